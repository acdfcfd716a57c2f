"""Atari-57 score files: the ``game,score`` CSVs that ``impala-tf test``
writes, read for :mod:`atari57.report` and :mod:`atari57.evaluate`.

A CSV has a header with (at least) the columns ``game,score``; a line that
repeats the header (files joined with ``cat``) is skipped. A ``--scores``
value is a file, a comma-separated list of files, or a directory standing
for every ``test_scores.csv`` below it. Game names are the snake_case names
of ``atari57.ALL_GAMES``. Errors are :class:`ReportError`, one sentence.
"""

import csv
import math
from typing import Dict, List, Sequence

from atari57 import games as games_lib
from impala_tf import errors
from impala_tf.runtime import score_files as score_files_lib

__all__ = ["ReportError", "SCORES_FILE_NAME", "canonical_game",
           "load_scores", "load_scores_csv", "score_files"]


class ReportError(errors.UsageError, ValueError):
    """Bad input to the report (the CLI prints it and exits with status 2)."""


def canonical_game(name: str, where: str) -> str:
    """Maps a game name from input to its snake_case name or raises."""
    stripped = name.strip()
    if stripped in games_lib.GAMES:
        return stripped
    if stripped.lower() in games_lib.GAMES:
        return stripped.lower()
    try:
        games_lib.check_game(stripped)
    except ValueError as e:
        raise ReportError(f"{where}: {e}") from None
    return stripped


def load_scores_csv(path: str) -> Dict[str, List[float]]:
    """Reads a ``game,score`` CSV into ``{game: [score, ...]}`` (file order).

    A line equal to the header (another file's header, after ``cat``) is
    skipped. Raises ReportError for an unreadable file, a missing header
    column, a non-numeric score, an unknown game name or a file without
    scores.
    """
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            reader = csv.reader(f)
            header = [c.strip() for c in next(reader, [])]
            if "game" not in header or "score" not in header:
                raise ReportError(
                    f"{path}: the first line must be a header with the "
                    f"columns 'game' and 'score' (found: "
                    f"{','.join(header) or 'nothing'})")
            game_col, score_col = header.index("game"), header.index("score")
            scores: Dict[str, List[float]] = {}
            for row in reader:
                cells = [c.strip() for c in row]
                if not any(cells) or cells == header:
                    continue  # Blank line, or a repeated header.
                where = f"{path} line {reader.line_num}"
                raw_game = cells[game_col] if game_col < len(cells) else ""
                raw_score = cells[score_col] if score_col < len(cells) else ""
                if not raw_game:
                    raise ReportError(f"{where}: the game name is empty")
                game = canonical_game(raw_game, where)
                try:
                    score = float(raw_score)
                except ValueError:
                    raise ReportError(
                        f"{where}: score {raw_score!r} for {game!r} is not a "
                        f"number") from None
                if not math.isfinite(score):
                    raise ReportError(
                        f"{where}: score {raw_score!r} for {game!r} is not a "
                        f"finite number")
                scores.setdefault(game, []).append(score)
    except OSError as e:
        raise ReportError(
            f"cannot read scores file {path!r}: {e.strerror or e}") from None
    except (UnicodeDecodeError, csv.Error) as e:
        raise ReportError(f"{path}: not a readable CSV file ({e})") from None
    if not scores:
        raise ReportError(f"{path}: no scores found (expected rows game,score)")
    return scores


SCORES_FILE_NAME = score_files_lib.SCORES_FILE_NAME


def score_files(specs: Sequence[str]) -> List[str]:
    """The CSV files named by ``specs``, in order, each once (a file, a
    comma-separated list of files, or a directory standing for every
    ``test_scores.csv`` below it). Raises ReportError for a path that does
    not exist or a directory without such a file."""
    try:
        return score_files_lib.find(
            specs, hint="run impala-tf test for each game first")
    except score_files_lib.ScoreFilesError as e:
        raise ReportError(str(e)) from None


def load_scores(paths: Sequence[str]) -> Dict[str, List[float]]:
    """:func:`load_scores_csv` of every file, a game's scores pooled over
    the files (in file order)."""
    scores: Dict[str, List[float]] = {}
    for path in paths:
        for game, values in load_scores_csv(path).items():
            scores.setdefault(game, []).extend(values)
    return scores
