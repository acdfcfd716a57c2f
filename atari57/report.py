r"""Atari-57 score report: human-normalised scores beside the IMPALA paper's.

Usage::

    impala-tf atari57 report --scores FILE_OR_DIR [--scores ...]
        [--format=table|json|markdown] [--plot FILE.png] [--allow_partial]

(``python -m atari57.report`` takes the same flags.) Each ``--scores``
value is a CSV file, a comma-separated list of them, or a directory, which
stands for every ``test_scores.csv`` below it (what ``impala-tf test``
writes into a run's logdir). A CSV has a header with (at least) the columns
``game,score``; one row per evaluation episode (or one row per game). A
line that repeats the header (files joined with ``cat``) is skipped. Rows of
a game are averaged over all files (the paper reports the mean of 200
evaluation episodes). Game names are the snake_case names of
``atari57.ALL_GAMES``.

For every game the report prints the raw score and the human-normalised score
``100 (score - random) / (human - random)`` (%), and beside them the paper's
Table C.1 columns (shallow experts, deep experts, deep multi-task; raw and
normalised), then the median and mean over games of each column and the
paper's reported medians (Table 4). Medians of the paper's columns are taken
over the same games as this run's, so a partial report compares like with
like. (The paper's *means* were computed with other reference scores and
are not reproduced by its own Table C.1, so no "reported mean" is shown.)

A game missing from the CSVs is an error (exit status 2) unless
``--allow_partial``; an unknown game name or a malformed file is an error
too. Errors print one ``error: ...`` line to stderr, never a traceback.

The library functions (:func:`compute_report`, :func:`format_report`,
:func:`plot_report`, and the readers of :mod:`atari57.score_files`
re-exported here: :func:`load_scores_csv`, :func:`load_scores`,
:func:`score_files`) do not read flags. :func:`main` takes the arguments
after the command's name and returns the exit status (the suite plug-in's
command).
"""

import json
import math
import statistics
import sys
from typing import Dict, List, Mapping, Sequence, Union

from absl import flags

from atari57 import games as games_lib
from atari57 import score_files as score_files_lib
from impala_tf.cli import small_command

__all__ = ["ReportError", "compute_report", "format_report", "load_scores",
           "load_scores_csv", "plot_report", "score_files", "main"]

FORMATS = ("table", "json", "markdown")


# -- Input (atari57.score_files) ---------------------------------------------

ReportError = score_files_lib.ReportError
SCORES_FILE_NAME = score_files_lib.SCORES_FILE_NAME
load_scores_csv = score_files_lib.load_scores_csv
load_scores = score_files_lib.load_scores
score_files = score_files_lib.score_files
_canonical_game = score_files_lib.canonical_game


# -- Computation --------------------------------------------------------------


def _summary(values: Sequence[float]) -> Dict[str, float]:
    return {"median": statistics.median(values),
            "mean": statistics.fmean(values)}


def compute_report(scores: Mapping[str, Union[float, Sequence[float]]],
                   allow_partial: bool = False) -> dict:
    """Builds the report for ``{game: score or [episode scores]}``.

    A list of scores for a game is averaged. Raises ReportError for unknown
    games, non-finite scores, an empty mapping, or (unless ``allow_partial``)
    games of the 57 that have no score.

    Returns a JSON-serialisable dict::

      {"num_games": n, "missing": [names], "partial": bool,
       "games": [{"game", "score", "num_episodes", "normalized",
                  "random", "human",
                  "paper": {column: {"score", "normalized"}}}, ...],
       "summary": {"median": %, "mean": %},
       "paper": {column: {"label", "median", "mean", "reported_median"}}}

    Games are in ``ALL_GAMES`` order; the paper's median/mean are over the
    same games as the run's; ``reported_median`` is Table 4's (57 games).
    """
    averaged: Dict[str, float] = {}
    episodes: Dict[str, int] = {}
    for name, value in scores.items():
        game = _canonical_game(str(name), "scores")
        if isinstance(value, (int, float)):
            values = [float(value)]
        else:
            values = [float(v) for v in value]
        if not values:
            raise ReportError(f"no scores for game {game!r}")
        if not all(math.isfinite(v) for v in values):
            raise ReportError(f"a score for {game!r} is not a finite number")
        if game in averaged:  # e.g. "Pong" and "pong" both given.
            raise ReportError(f"game {game!r} is given twice")
        averaged[game] = statistics.fmean(values)
        episodes[game] = len(values)
    if not averaged:
        raise ReportError("no scores given")
    missing = [g for g in games_lib.ALL_GAMES if g not in averaged]
    if missing and not allow_partial:
        raise ReportError(
            f"{len(missing)} of {len(games_lib.ALL_GAMES)} games have no "
            f"score ({_name_list(missing)}); give all 57 games or pass "
            f"--allow_partial to report on the {len(averaged)} given")

    rows = []
    for game in games_lib.ALL_GAMES:
        if game not in averaged:
            continue
        info = games_lib.GAMES[game]
        paper = {}
        for column in games_lib.PAPER_COLUMNS:
            raw = getattr(info, column)
            paper[column] = {
                "score": raw,
                "normalized": games_lib.human_normalized_score(game, raw)}
        rows.append({
            "game": game,
            "score": averaged[game],
            "num_episodes": episodes[game],
            "normalized": games_lib.human_normalized_score(
                game, averaged[game]),
            "random": info.random,
            "human": info.human,
            "paper": paper,
        })
    paper_summary = {}
    for column in games_lib.PAPER_COLUMNS:
        stats = _summary([r["paper"][column]["normalized"] for r in rows])
        paper_summary[column] = {
            "label": games_lib.PAPER_COLUMN_LABELS[column],
            "median": stats["median"],
            "mean": stats["mean"],
            "reported_median": games_lib.PAPER_MEDIANS[column],
        }
    return {
        "num_games": len(rows),
        "missing": missing,
        "partial": bool(missing),
        "games": rows,
        "summary": _summary([r["normalized"] for r in rows]),
        "paper": paper_summary,
    }


def _name_list(names: Sequence[str], limit: int = 8) -> str:
    if len(names) <= limit:
        return ", ".join(names)
    return ", ".join(names[:limit]) + f", ... ({len(names) - limit} more)"


# -- Output -------------------------------------------------------------------


def _fmt_score(x: float) -> str:
    return f"{x:,.1f}"


def _fmt_pct(x: float) -> str:
    return f"{x:.1f}%"


_SHORT = {"shallow_experts": "shallow experts",
          "deep_experts": "deep experts",
          "deep_multitask": "deep multi-task"}


def _header_cells() -> List[str]:
    cells = ["game", "n", "score", "norm"]
    for column in games_lib.PAPER_COLUMNS:
        cells += [f"{_SHORT[column]}", "norm"]
    return cells


def _row_cells(row: dict) -> List[str]:
    cells = [row["game"], str(row["num_episodes"]), _fmt_score(row["score"]),
             _fmt_pct(row["normalized"])]
    for column in games_lib.PAPER_COLUMNS:
        cells += [_fmt_score(row["paper"][column]["score"]),
                  _fmt_pct(row["paper"][column]["normalized"])]
    return cells


def _summary_lines(report: dict) -> List[List[str]]:
    """Rows [statistic, this run, paper columns...] for the summary table."""
    paper = report["paper"]
    over = ("57 games" if not report["partial"]
            else f"the same {report['num_games']} games")
    columns = games_lib.PAPER_COLUMNS
    lines = []
    for stat in ("median", "mean"):
        lines.append([f"{stat} (over {over})",
                      _fmt_pct(report["summary"][stat])] +
                     [_fmt_pct(paper[c][stat]) for c in columns])
    lines.append(["paper's reported median (Table 4)", "-"] +
                 [_fmt_pct(paper[c]["reported_median"]) for c in columns])
    return lines


def _notes(report: dict) -> List[str]:
    notes = ["Scores are raw game scores (mean over the CSV's rows per game); "
             "norm = human-normalised score 100*(score-random)/(human-random). "
             "Paper columns: IMPALA Table C.1."]
    if report["partial"]:
        notes.append(
            f"PARTIAL: {len(report['missing'])} of {len(games_lib.ALL_GAMES)} "
            f"games missing ({_name_list(report['missing'])}); statistics "
            f"are over the {report['num_games']} games given, for the paper's "
            f"columns too, and are not comparable with Table 4.")
    notes.append("The paper's means used other reference scores; its Table "
                 "C.1 does not reproduce them, so none is shown.")
    return notes


def _text_table(header: List[str], rows: List[List[str]]) -> List[str]:
    widths = [max(len(r[i]) for r in [header] + rows)
              for i in range(len(header))]

    def line(cells):
        out = [cells[0].ljust(widths[0])]
        out += [c.rjust(w) for c, w in zip(cells[1:], widths[1:])]
        return "  ".join(out).rstrip()

    sep = "  ".join("-" * w for w in widths)
    return [line(header), sep] + [line(r) for r in rows]


def _markdown_table(header: List[str], rows: List[List[str]]) -> List[str]:
    out = ["| " + " | ".join(header) + " |",
           "|" + "|".join([":---"] + ["---:"] * (len(header) - 1)) + "|"]
    out += ["| " + " | ".join(r) + " |" for r in rows]
    return out


def format_report(report: dict, fmt: str = "table") -> str:
    """Renders :func:`compute_report`'s output as table, json or markdown."""
    if fmt == "json":
        return json.dumps(report, indent=2)
    if fmt not in FORMATS:
        raise ReportError(f"unknown format {fmt!r}; one of {FORMATS}")
    header = _header_cells()
    rows = [_row_cells(r) for r in report["games"]]
    summary_header = ["statistic (human-normalised)", "this run"] + [
        games_lib.PAPER_COLUMN_LABELS[c] for c in games_lib.PAPER_COLUMNS]
    summary = _summary_lines(report)
    if fmt == "markdown":
        lines = ["## Atari-57 human-normalised scores", ""]
        lines += _markdown_table(header, rows) + [""]
        lines += _markdown_table(summary_header, summary) + [""]
        lines += ["- " + n for n in _notes(report)]
    else:
        lines = _text_table(header, rows) + [""]
        lines += _text_table(summary_header, summary) + [""]
        lines += _notes(report)
    return "\n".join(lines)


def plot_report(report: dict, path: str) -> None:
    """Draws per-game normalised scores, this run's against the paper's."""
    import matplotlib  # pylint: disable=g-import-not-at-top
    matplotlib.use("Agg")
    from matplotlib import pyplot as plt  # pylint: disable=g-import-not-at-top

    rows = report["games"]
    n = len(rows)
    ys = list(range(n))[::-1]  # First game at the top.
    fig, ax = plt.subplots(figsize=(9, 2.6 + 0.2 * n), layout="constrained")
    styles = {"shallow_experts": ("tab:blue", "o"),
              "deep_experts": ("tab:green", "s"),
              "deep_multitask": ("tab:orange", "^")}
    for column in games_lib.PAPER_COLUMNS:
        color, marker = styles[column]
        ax.scatter([r["paper"][column]["normalized"] for r in rows], ys,
                   s=18, color=color, marker=marker, alpha=0.7,
                   label=(f"{games_lib.PAPER_COLUMN_LABELS[column]} (median "
                          f"{report['paper'][column]['median']:.1f}%)"))
    values = [r["normalized"] for r in rows] + [
        r["paper"][c]["normalized"]
        for r in rows for c in games_lib.PAPER_COLUMNS]
    ax.scatter([r["normalized"] for r in rows], ys, s=40, color="black",
               marker="D", label=f"this run (median "
                                 f"{report['summary']['median']:.1f}%)",
               zorder=3)
    ax.axvline(0, color="grey", lw=0.8, ls=":")
    ax.axvline(100, color="grey", lw=0.8, ls="--")
    ax.set_xscale("symlog", linthresh=100)
    ax.set_xlim(min(-20.0, 1.5 * min(values)), max(200.0, 1.5 * max(values)))
    ax.set_yticks(ys)
    ax.set_yticklabels([r["game"] for r in rows], fontsize=7)
    ax.set_ylim(-1, n)
    ax.set_xlabel("human-normalised score (%, symlog; 0 = random, "
                  "100 = human)")
    title = "Atari-57: this run vs IMPALA (Table C.1)"
    if report["partial"]:
        title += f" - {n} of {len(games_lib.ALL_GAMES)} games"
    ax.set_title(title)
    ax.grid(axis="x", alpha=0.3)
    fig.legend(loc="outside lower center", ncol=2, fontsize=7)
    try:
        fig.savefig(path, dpi=100)
    except OSError as e:
        raise ReportError(
            f"cannot write plot {path!r}: {e.strerror or e}") from None
    finally:
        plt.close(fig)


# -- Command line -------------------------------------------------------------


def _define_flags(flag_values: flags.FlagValues) -> None:
    """The command's flags, in their own FlagValues (so the command runs
    inside another program without touching its flags)."""
    flags.DEFINE_multi_string(
        "scores", [], "CSV file with columns game,score (a comma-separated "
        "list of them, or a directory: every test_scores.csv below it); "
        "repeatable. A game's rows are averaged over all files.",
        flag_values=flag_values)
    flags.DEFINE_enum("format", "table", list(FORMATS), "Output format.",
                      flag_values=flag_values)
    flags.DEFINE_string("plot", None, "If set, write a PNG plot of per-game "
                        "normalised scores against the paper's to this path.",
                        flag_values=flag_values)
    flags.DEFINE_bool("allow_partial", False,
                      "Report on the games given even if some of the 57 are "
                      "missing (statistics over those games).",
                      flag_values=flag_values)


USAGE = ("usage: impala-tf atari57 report --scores FILE_OR_DIR [--scores ...] "
         "[--format=table|json|markdown] [--plot FILE.png] [--allow_partial]")


def _run(flag_values: flags.FlagValues) -> None:
    if not flag_values.scores:
        raise ReportError("--scores FILE.csv is required")
    scores = load_scores(score_files(flag_values.scores))
    report = compute_report(scores, allow_partial=flag_values.allow_partial)
    if report["partial"]:
        print(f"warning: {len(report['missing'])} of "
              f"{len(games_lib.ALL_GAMES)} games missing "
              f"({_name_list(report['missing'])}); reporting on "
              f"{report['num_games']}", file=sys.stderr)
    print(format_report(report, flag_values.format))
    if flag_values.plot:
        plot_report(report, flag_values.plot)
        print(f"wrote {flag_values.plot}", file=sys.stderr)


def main(argv: Sequence[str]) -> int:
    """Runs the command on ``argv`` (the arguments after its name);
    returns the exit status: 0, or 2 after one ``error:`` line
    (`impala_tf.cli.small_command`)."""
    return small_command.run(argv, "atari57.report", _define_flags, _run,
                             USAGE, __doc__.split("\n\n")[0])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
