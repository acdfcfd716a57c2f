#!/bin/sh
# Offline stub; see third_party/bazel/README.md.
echo "remote_coverage_tools is a local stub: 'bazel coverage' is not supported in this offline build." >&2
exit 1
