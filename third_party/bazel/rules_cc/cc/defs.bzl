"""Offline stand-in for @rules_cc//cc:defs.bzl: the native C++ rules.

Bazel 4.2.3's generated @local_config_cc (and parts of @bazel_tools) load the
rules from here; the real rules_cc of that era only re-exported the native
rules too. See third_party/bazel/README.md.
"""

cc_binary = native.cc_binary
cc_import = native.cc_import
cc_library = native.cc_library
cc_proto_library = native.cc_proto_library
cc_test = native.cc_test
cc_toolchain = native.cc_toolchain
cc_toolchain_suite = native.cc_toolchain_suite
fdo_prefetch_hints = native.fdo_prefetch_hints
fdo_profile = native.fdo_profile
objc_import = native.objc_import
objc_library = native.objc_library
