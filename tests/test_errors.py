"""Tests for impala_tf/errors.py: the user-error type and `fail`."""

import os
import subprocess
import sys

import pytest

from impala_tf import errors
from impala_tf import testing


def test_fail_prints_one_error_line_and_exits_2(capsys):
    with pytest.raises(SystemExit) as exit_info:
        errors.fail("--frames is required")
    assert exit_info.value.code == errors.EXIT_USAGE == 2
    assert capsys.readouterr().err == "error: --frames is required\n"


def test_first_line():
    assert errors.first_line(ValueError("one\ntwo")) == "one"
    assert errors.first_line(errors.UsageError()) == "UsageError()"


@pytest.mark.parametrize("hard", [False, True])
def test_fail_ends_the_process_after_flushing_its_output(hard):
    code = ("from impala_tf import errors\n"
            "print('partial output', end='')\n"
            "try:\n    errors.fail('bad flag', hard=%r)\n"
            "finally:\n    print(' finally ran', end='')\n" % hard)
    result = subprocess.run([sys.executable, "-c", code], cwd=testing.REPO,
                            env=dict(os.environ, PYTHONPATH=testing.REPO),
                            capture_output=True, text=True, timeout=120,
                            check=False)
    assert result.returncode == 2
    assert result.stderr == "error: bad flag\n"
    # A hard exit runs no `finally`; both flush what was printed before.
    assert result.stdout == ("partial output" if hard
                             else "partial output finally ran")
