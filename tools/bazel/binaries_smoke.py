"""Bazel smoke test: each py_binary behaves like `python -m` on --help.

Run by //tools/bazel:binaries_smoke (part of `bazel test //...`). It checks
the Bazel wiring of //:impala-tf, //:experiment, //:pbt, //:atari57_report
and //:dmlab30_report (generated runpy mains, runfiles, the venv
interpreter), not the programs: `<binary> --help` must give the same exit
status and output as `python -m <module> --help` (absl's --help exits with
status 1; impala-tf's with 0).
A binary whose module is not in the repository yet is skipped, with a reason.
Outside Bazel (no $TEST_SRCDIR) everything is skipped.
"""

import os
import subprocess
import sys

import pytest

WORKSPACE_NAME = "impala_tf_workspace"  # workspace(name = ...) in /WORKSPACE

# Binary -> the file of the module it runs (the module: its dotted path).
BINARIES = {
    "impala-tf": "impala_tf/__main__.py",
    "experiment": "impala_tf/cli/experiment.py",
    "pbt": "impala_tf/cli/pbt.py",
    "atari57_report": "atari57/report.py",
    "dmlab30_report": "dmlab30/report.py",
}


@pytest.mark.parametrize("binary", sorted(BINARIES))
def test_binary_prints_help(binary):
    srcdir = os.environ.get("TEST_SRCDIR")
    if not srcdir:
        pytest.skip("only runs under `bazel test`")
    root = os.path.join(srcdir, WORKSPACE_NAME)
    if not os.path.exists(os.path.join(root, BINARIES[binary])):
        pytest.skip(f"{BINARIES[binary]} does not exist yet")
    module = BINARIES[binary][:-len(".py")].replace("/", ".")

    def run(command):
        return subprocess.run(
            command + ["--help"], cwd=root, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, text=True, timeout=300, check=False)

    expected = run([sys.executable, "-m", module])
    got = run([os.path.join(root, binary)])
    assert "Traceback" not in got.stdout, got.stdout
    assert "--help" in expected.stdout or "usage" in expected.stdout.lower(), (
        expected.stdout)
    assert (got.returncode, got.stdout) == (expected.returncode,
                                            expected.stdout)
