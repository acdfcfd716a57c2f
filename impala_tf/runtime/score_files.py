"""Where test scores are written and how several score files are named.

`impala-tf test` writes one CSV of per-episode returns per run,
`<logdir>/SCORES_FILE_NAME` (`runtime.evaluate`). A suite's report reads
them back; its `--scores` value goes through `find`: a file, a
comma-separated list of files, or a directory standing for every score file
below it. No TensorFlow: the reports import this.
"""

import os

from impala_tf import errors

SCORES_FILE_NAME = "test_scores.csv"


class ScoreFilesError(errors.UsageError, ValueError):
    """A score file that is not there; the message is one sentence."""


def find(specs, hint=""):
    """The CSV files named by `specs` (strings), in order, each once.

    Each spec is a file, a comma-separated list of files, or a directory,
    which stands for every SCORES_FILE_NAME below it (sorted by path).
    hint: words added to the message for a directory without one.
    Raises ScoreFilesError for a path that does not exist, a directory
    without a score file, or no file at all.
    """
    files = []
    for spec in specs:
        for path in (p.strip() for p in spec.split(",")):
            if not path:
                continue
            if os.path.isdir(path):
                found = sorted(
                    os.path.join(root, SCORES_FILE_NAME)
                    for root, _, names in os.walk(path)
                    if SCORES_FILE_NAME in names)
                if not found:
                    raise ScoreFilesError(
                        f"directory {path!r} holds no {SCORES_FILE_NAME}"
                        + (f" ({hint})" if hint else ""))
            elif os.path.exists(path):
                found = [path]
            else:
                raise ScoreFilesError(f"cannot read scores file {path!r}: "
                                      "No such file or directory")
            files += [f for f in found if f not in files]
    if not files:
        raise ScoreFilesError("no scores file given (--scores)")
    return files
