"""Tests for impala_tf/cli/small_command.py: a command on its own
FlagValues, with --help, one-sentence errors and exit statuses."""

from absl import flags
import pytest

from impala_tf.cli import small_command
from impala_tf.errors import UsageError


def _define(flag_values):
    flags.DEFINE_integer("count", 1, "How many.", lower_bound=0,
                         flag_values=flag_values)
    flags.DEFINE_string("name", None, "A name.", flag_values=flag_values)


def _run(argv, body):
    return small_command.run(argv, "demo", _define, body,
                             "usage: demo [--count=N]", "Does a demo.")


def test_body_gets_the_parsed_flags_and_the_status_is_0():
    seen = []
    assert _run(["--count=3", "--name=x"],
                lambda fv: seen.append((fv.count, fv.name))) == 0
    assert seen == [(3, "x")]
    # absl's global FLAGS are untouched.
    assert "count" not in flags.FLAGS


@pytest.mark.parametrize("arg", ["-h", "--help", "--helpfull"])
def test_help_prints_usage_summary_and_flags(arg, capsys):
    def body(_):
        raise AssertionError("--help runs nothing")

    assert _run(["--count=-5", arg], body) == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: demo [--count=N]\n\nDoes a demo.\n\nflags:\n")
    assert "--count: How many." in out and "--name: A name." in out


@pytest.mark.parametrize("argv, body_error, message", [
    (["--count=-1"], None, "error: flag --count=-1: -1 is not a "
     "non-negative integer"),
    (["--no_such=1"], None, "error: Unknown command line flag 'no_such'"),
    (["extra", "more"], None, "error: unexpected arguments: extra more"),
    ([], UsageError("no scores; give --scores\nsecond line"),
     "error: no scores; give --scores"),
    ([], ValueError("bad value"), "error: bad value"),
])
def test_bad_input_is_one_sentence_and_status_2(argv, body_error, message,
                                                capsys):
    def body(_):
        if body_error:
            raise body_error

    assert _run(argv, body) == 2
    captured = capsys.readouterr()
    assert captured.err == message + "\n"
    assert captured.out == ""


def test_other_errors_are_not_hidden():
    def body(_):
        raise RuntimeError("a bug")

    with pytest.raises(RuntimeError, match="a bug"):
        _run([], body)
    # A narrower `errors` reports only those types.
    with pytest.raises(ValueError):
        small_command.run([], "demo", _define,
                          lambda _: (_ for _ in ()).throw(ValueError("v")),
                          "usage", "summary", errors=(KeyError,))
