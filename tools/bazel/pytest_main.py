"""Runs pytest files as a Bazel test (the main of every //tests target).

Usage (written by pytest_file_test and pytest_files_test in
tools/bazel/defs.bzl):
    pytest_main.py [--impala_tf_skip_slow_marks] [pytest args] tests/test_x.py...

Bazel starts the test in its runfiles tree, which mirrors the repository
(pytest.ini, tests/, impala_tf/, ...), so pytest finds /pytest.ini and uses
its options. On top of them this runner:
  * writes the JUnit XML that Bazel asks for ($XML_OUTPUT_FILE), so Bazel
    reports individual test cases;
  * keeps pytest's files (cache, tmp_path, byte code) out of the read-only
    runfiles tree: temporary directories go under $TEST_TMPDIR, and so does
    $HOME when Bazel passes none (it does not, by default);
  * maps `bazel test --test_filter=EXPR` to `pytest -k EXPR`;
  * with --impala_tf_skip_slow_marks, deselects tests marked
    @pytest.mark.slow (like `make test-fast`), unless the environment has
    IMPALA_TF_SLOW_TESTS=1 (`bazel test --test_env=IMPALA_TF_SLOW_TESTS=1`).
  * lets impala_tf find the suites atari57 and dmlab30, which are not
    installed here (no entry points): IMPALA_TF_SUITES names their plug-in
    modules unless the environment sets it.
Exit status: pytest's (0 passed, 1 failed, 5 nothing collected, ...).
"""

import os
import sys

SKIP_SLOW_FLAG = "--impala_tf_skip_slow_marks"
# impala_tf.envs.suites reads this variable where no entry points are installed.
SUITES_ENV_VAR = "IMPALA_TF_SUITES"
SUITE_MODULES = "atari57.suite,dmlab30.suite"


def pytest_args(argv, environ):
    """pytest.main() arguments for this runner's arguments and environment."""
    argv = list(argv)
    skip_slow = SKIP_SLOW_FLAG in argv
    argv = [a for a in argv if a != SKIP_SLOW_FLAG]
    args = ["-p", "no:cacheprovider", "-rfEs"]
    xml_output = environ.get("XML_OUTPUT_FILE")
    if xml_output:
        args.append("--junitxml=" + xml_output)
    tmpdir = environ.get("TEST_TMPDIR")
    if tmpdir:
        args.append("--basetemp=" + os.path.join(tmpdir, "pytest"))
    test_filter = environ.get("TESTBRIDGE_TEST_ONLY")
    if test_filter:
        args += ["-k", test_filter]
    if skip_slow and environ.get("IMPALA_TF_SLOW_TESTS", "") not in ("1", "true"):
        args += ["-m", "not slow"]
    return args + argv


def main(argv):
    # Before pytest (and the code under test) is imported: no __pycache__
    # directories in the runfiles tree, which is the source tree in disguise.
    sys.dont_write_bytecode = True
    os.environ.setdefault("PYTHONDONTWRITEBYTECODE", "1")
    os.environ.setdefault(SUITES_ENV_VAR, SUITE_MODULES)
    tmpdir = os.environ.get("TEST_TMPDIR")
    if tmpdir:
        # Bazel runs tests without $HOME, and the real one is read-only in
        # its sandbox; caches (matplotlib, ...) go to a private home instead.
        home = os.path.join(tmpdir, "home")
        os.makedirs(home, exist_ok=True)
        os.environ.setdefault("HOME", home)
    import pytest  # pylint: disable=g-import-not-at-top
    return int(pytest.main(pytest_args(argv[1:], os.environ)))


if __name__ == "__main__":
    sys.exit(main(sys.argv))
