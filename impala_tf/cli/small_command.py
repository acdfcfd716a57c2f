"""A small command on its own absl FlagValues, as the suites' reports are.

`run(argv, ...)` parses `argv` (the arguments after the command's name) into
a fresh `flags.FlagValues` and calls `body(flag_values)`:

* `-h`, `--help` or `--helpfull` anywhere: prints the usage line, the
  summary and the flags' help on stdout; exit status 0.
* a bad flag, an argument that is not a flag, or an exception of one of
  `errors` raised by `body`: one `error: <sentence>` line on stderr (the
  first line of the message); exit status 2 (`errors.EXIT_USAGE`).
* otherwise: 0.

It does not touch absl's global FLAGS, so a command can run in process
(`impala-tf atari57 report ...`) beside any other. No TensorFlow.
"""

import sys

from absl import flags

from impala_tf import errors as errors_lib

HELP_ARGS = ("-h", "--help", "--helpfull")


def run(argv, name, define_flags, body, usage, summary,
        errors=(errors_lib.UsageError, ValueError)):
    """Runs one command; returns its exit status (see the module doc).

    Args:
      argv: the arguments after the command's name.
      name: the program name absl parses with (e.g. "atari57.report").
      define_flags: callable(flag_values) defining the command's flags.
      body: callable(flag_values), the command's work.
      usage: the usage line(s) `--help` prints first.
      summary: what the command does, printed after `usage`.
      errors: the exception types of `body` reported as one sentence.
    """
    flag_values = flags.FlagValues()
    define_flags(flag_values)
    if any(a in HELP_ARGS for a in argv):
        print(f"{usage}\n\n{summary}\n\nflags:\n{flag_values.get_help()}")
        return 0
    try:
        rest = flag_values([name] + list(argv))
        if len(rest) > 1:
            raise errors_lib.UsageError(
                f"unexpected arguments: {' '.join(rest[1:])}")
        body(flag_values)
    except (flags.Error, errors_lib.UsageError) + tuple(errors) as e:
        print(f"error: {errors_lib.first_line(e)}", file=sys.stderr)
        return errors_lib.EXIT_USAGE
    return 0
