"""The one user-error type, and how an entry point reports it.

`UsageError` is bad input the user can fix: a flag, a missing run or file,
an environment that cannot be built. Its message is one sentence. Library
code raises it; an entry point catches it and calls `fail`, which prints
`error: <message>` on stderr and exits with status 2 (`EXIT_USAGE`), never
a traceback.

No TensorFlow, no absl: every entry point imports this before either.
"""

import os
import sys

EXIT_USAGE = 2


class UsageError(Exception):
    """Bad input (flags, files, the environment); the message is one
    sentence, and an entry point exits with status 2 on it."""


def first_line(error):
    """The first line of `error`'s message, or its repr if it has none (an
    exception raised with no text)."""
    text = str(error).strip()
    return text.splitlines()[0] if text else repr(error)


def fail(message, status=EXIT_USAGE, hard=False):
    """Prints `error: <message>` on stderr and exits with `status`.

    hard: end the process at once (`os._exit`: no `finally` blocks, atexit
    handlers or thread joins run) after flushing stdout and stderr, for a
    process whose TensorFlow threads could otherwise keep it alive; else
    `sys.exit`.
    """
    sys.stderr.write(f"error: {message}\n")
    sys.stdout.flush()
    sys.stderr.flush()
    if hard:
        os._exit(status)  # pylint: disable=protected-access
    sys.exit(status)
