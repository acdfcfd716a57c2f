"""Offline stand-in for @rules_java//java:defs.bzl: the native Java rules.

@bazel_tools//tools/jdk loads the rules from here; the real rules_java of that
era only re-exported the native rules too. See third_party/bazel/README.md.
"""

java_binary = native.java_binary
java_import = native.java_import
java_library = native.java_library
java_lite_proto_library = native.java_lite_proto_library
java_package_configuration = native.java_package_configuration
java_plugin = native.java_plugin
java_proto_library = native.java_proto_library
java_runtime = native.java_runtime
java_test = native.java_test
java_toolchain = native.java_toolchain
