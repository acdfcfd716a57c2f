r"""DMLab-30 report: human-normalised scores of per-level returns.

Usage:

  impala-tf dmlab30 report --scores=FILE_OR_DIR [--scores=...]
                           [--format=table|json|markdown] [--plot=scores.png]

(``python -m dmlab30.report`` takes the same flags.) Each ``--scores`` value
is a CSV file, a comma-separated list of them, or a directory, which stands
for every ``test_scores.csv`` below it (what ``impala-tf test`` writes into
a run's logdir). A file has rows ``level,score`` (a header row naming the
columns ``level`` and ``score`` is optional, and a line repeating it, as
after joining files with ``cat``, is skipped; blank lines and lines
starting with ``#`` are skipped too). Level names may be test or train
names, optionally prefixed with ``dmlab/`` or ``contributed/dmlab30/``;
train names count under their test names. Rows for a level are averaged
over all files (so one row per evaluation episode works). All 30 levels
must be present.

The report lists per level the score, the human-normalised score (uncapped
and capped at 100) and the IMPALA paper's Table B.1 results for the same level,
then the mean capped and uncapped scores beside the paper's. On bad input it
prints one sentence to stderr and exits with status 2.

The library functions (:func:`read_scores`, :func:`read_scores_csv`,
:func:`score_files`, :func:`build_report`, :func:`format_report`,
:func:`plot_report`) do not depend on the flags. :func:`main` takes the
arguments after the command's name and returns the exit status (the suite
plug-in's command).
"""

import csv
import json
import math
import sys

import dmlab30
from dmlab30 import levels as levels_lib
from impala_tf import errors
from impala_tf.runtime import score_files as score_files_lib

FORMATS = ("table", "json", "markdown")
PER_LEVEL_CAP = dmlab30.DEFAULT_PER_LEVEL_CAP


class ReportError(errors.UsageError, ValueError):
    """Bad input to the report; its message is one sentence for the user."""


SCORES_FILE_NAME = score_files_lib.SCORES_FILE_NAME


def score_files(specs):
    """The CSV files named by ``specs`` (strings), in order, each once (a
    file, a comma-separated list of files, or a directory standing for
    every ``test_scores.csv`` below it). Raises ReportError for a path that
    does not exist or a directory without such a file."""
    try:
        return score_files_lib.find(specs)
    except score_files_lib.ScoreFilesError as e:
        raise ReportError(str(e)) from None


def _read_rows(path, sums, counts):
    """Adds the ``level,score`` rows of one file to ``sums`` and
    ``counts`` (by test level); returns how many rows it read."""
    try:
        with open(path, newline="", encoding="utf-8") as f:
            rows = list(csv.reader(f))
    except OSError as e:
        raise ReportError(
            f"cannot read scores file {path!r}: {e.strerror or e}") from None
    except (UnicodeDecodeError, csv.Error) as e:
        raise ReportError(
            f"scores file {path!r} is not a readable CSV file ({e})") from None

    level_col, score_col = 0, 1
    header = None
    read = 0
    for line_number, row in enumerate(rows, start=1):
        cells = [cell.strip() for cell in row]
        if not any(cells) or cells[0].startswith("#"):
            continue
        lowered = [cell.lower() for cell in cells]
        if header is None and not read and (
                "level" in lowered and "score" in lowered):
            level_col, score_col = lowered.index("level"), lowered.index(
                "score")
            header = lowered
            continue
        if lowered == header:
            continue  # A repeated header (files joined with cat).
        where = f"{path}, line {line_number}"
        if len(cells) <= max(level_col, score_col):
            raise ReportError(
                f"{where}: expected a row 'level,score', got {','.join(row)!r}")
        name, raw_score = cells[level_col], cells[score_col]
        try:
            score = float(raw_score)
        except ValueError:
            raise ReportError(
                f"{where}: score {raw_score!r} is not a number") from None
        if not math.isfinite(score):
            raise ReportError(f"{where}: score {raw_score!r} is not finite")
        try:
            level = dmlab30.to_test_level(name)
        except ValueError:
            raise ReportError(
                f"{where}: {name!r} is not a DMLab-30 level") from None
        sums[level] = sums.get(level, 0.0) + score
        counts[level] = counts.get(level, 0) + 1
        read += 1
    if not read:
        raise ReportError(f"scores file {path!r} has no 'level,score' rows")
    return read


def read_scores(paths):
    """Reads ``level,score`` rows of every file; returns ``{test level:
    mean score}``, each level's rows averaged over all files.

    Raises ReportError (a ValueError) for an unreadable file, a malformed row,
    an unknown level or a missing level.
    """
    sums, counts = {}, {}
    for path in paths:
        _read_rows(path, sums, counts)
    missing = [level for level in dmlab30.TEST_LEVELS if level not in sums]
    if missing:
        where = (f"scores file {paths[0]!r}" if len(paths) == 1
                 else f"the {len(paths)} scores files")
        raise ReportError(
            f"{where} lack{'s' if len(paths) == 1 else ''} {len(missing)} of "
            f"the 30 DMLab-30 levels: {', '.join(missing)}")
    return {level: sums[level] / counts[level] for level in dmlab30.TEST_LEVELS}


def read_scores_csv(path):
    """:func:`read_scores` of one file."""
    return read_scores([path])


def build_report(level_scores, per_level_cap=PER_LEVEL_CAP):
    """Builds the report as a JSON-serialisable dict.

    Args:
      level_scores: ``{level name: mean return}`` for all 30 levels (train
        names allowed, see :func:`dmlab30.to_test_level`).
      per_level_cap: the cap for the capped scores (100 in the paper).

    Returns:
      ``{'mean_capped', 'mean_uncapped', 'per_level_cap', 'levels': [...],
      'paper': {...}}``; each entry of ``levels`` holds ``level``, ``score``,
      ``normalized``, ``normalized_capped`` and ``paper_table_b1`` (the
      paper's raw score per Table B.1 column).
    """
    scores = dmlab30.map_to_test_levels(level_scores)
    rows = []
    for level, score in scores.items():
        rows.append({
            "level": level,
            "score": score,
            "normalized": dmlab30.human_normalized_score(level, score),
            "normalized_capped": dmlab30.human_normalized_score(
                level, score, per_level_cap),
            "paper_table_b1": {
                column: table[level]
                for column, table in levels_lib.PAPER_TABLE_B1.items()},
        })
    paper = {}
    for column, title in levels_lib.PAPER_TABLE_B1_COLUMNS.items():
        table = levels_lib.PAPER_TABLE_B1[column]
        paper[column] = {
            "name": title,
            "mean_capped_table_3": levels_lib.PAPER_TABLE_3[column],
            "mean_capped_from_table_b1": dmlab30.compute_human_normalized_score(
                table, per_level_cap),
            "mean_uncapped_from_table_b1":
                dmlab30.compute_human_normalized_score(table, None),
        }
    return {
        "mean_capped": sum(r["normalized_capped"] for r in rows) / len(rows),
        "mean_uncapped": sum(r["normalized"] for r in rows) / len(rows),
        "per_level_cap": per_level_cap,
        "levels": rows,
        "paper": paper,
    }


def _columns():
    return list(levels_lib.PAPER_TABLE_B1_COLUMNS.items())


def _format_rows(report):
    """Header and body cells shared by the text formats."""
    header = ["level", "score", "normalised", "capped"] + [
        f"paper: {title}" for _, title in _columns()]
    body = []
    for row in report["levels"]:
        body.append([row["level"], f"{row['score']:.2f}",
                     f"{row['normalized']:.1f}",
                     f"{row['normalized_capped']:.1f}"] +
                    [f"{row['paper_table_b1'][c]:.1f}" for c, _ in _columns()])
    paper = report["paper"]
    means = [
        ["MEAN CAPPED", "", "", f"{report['mean_capped']:.1f}"] +
        [f"{paper[c]['mean_capped_from_table_b1']:.1f} "
         f"(Table 3: {paper[c]['mean_capped_table_3']:.1f})"
         for c, _ in _columns()],
        ["MEAN UNCAPPED", "", f"{report['mean_uncapped']:.1f}", ""] +
        [f"{paper[c]['mean_uncapped_from_table_b1']:.1f}"
         for c, _ in _columns()],
    ]
    return header, body, means


def format_table(report):
    header, body, means = _format_rows(report)
    widths = [max(len(r[i]) for r in [header] + body + means)
              for i in range(len(header))]

    def line(cells):
        return "  ".join(
            cell.ljust(widths[i]) if i == 0 else cell.rjust(widths[i])
            for i, cell in enumerate(cells)).rstrip()

    rule = "  ".join("-" * w for w in widths)
    lines = [line(header), rule] + [line(r) for r in body] + [rule]
    lines += [line(r) for r in means]
    lines.append(
        f"Human-normalised scores in percent (per-level cap "
        f"{report['per_level_cap']:g}); paper columns are Table B.1 raw "
        f"scores, their means recomputed from Table B.1.")
    return "\n".join(lines) + "\n"


def format_markdown(report):
    header, body, means = _format_rows(report)
    align = ["---"] + ["---:"] * (len(header) - 1)
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join(align) + " |"]
    lines += ["| " + " | ".join(r) + " |" for r in body]
    lines += ["| " + " | ".join(f"**{c}**" if c else "" for c in r) + " |"
              for r in means]
    lines.append("")
    lines.append(
        f"Human-normalised scores in percent, per-level cap "
        f"{report['per_level_cap']:g}. Paper columns: raw scores from the "
        f"IMPALA paper's Table B.1; means recomputed from them, with Table 3's "
        f"published value in parentheses.")
    return "\n".join(lines) + "\n"


def format_json(report):
    return json.dumps(report, indent=2) + "\n"


def format_report(report, fmt="table"):
    """Renders a report from :func:`build_report` as 'table', 'json' or
    'markdown' text."""
    formatters = {"table": format_table, "json": format_json,
                  "markdown": format_markdown}
    if fmt not in formatters:
        raise ReportError(
            f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
    return formatters[fmt](report)


def plot_report(report, path):
    """Saves a bar chart of the capped normalised scores, beside the paper's."""
    import matplotlib
    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt
    import numpy as np

    level_names = [row["level"] for row in report["levels"]]
    series = [("this run (mean capped %.1f)" % report["mean_capped"],
               [row["normalized_capped"] for row in report["levels"]])]
    for column, title in _columns():
        table = levels_lib.PAPER_TABLE_B1[column]
        values = [dmlab30.human_normalized_score(level, table[level],
                                                 report["per_level_cap"])
                  for level in level_names]
        mean = report["paper"][column]["mean_capped_from_table_b1"]
        series.append((f"paper: {title} (mean capped {mean:.1f})", values))

    y = np.arange(len(level_names))
    height = 0.8 / len(series)
    fig, ax = plt.subplots(figsize=(9, 11))
    try:
        for i, (label, values) in enumerate(series):
            ax.barh(y + (i - (len(series) - 1) / 2) * height, values, height,
                    label=label)
        ax.set_yticks(y)
        ax.set_yticklabels(level_names, fontsize=7)
        ax.invert_yaxis()
        ax.axvline(100.0, color="grey", linewidth=0.8, linestyle="--")
        ax.set_xlabel("human-normalised score, capped at %g (%%)"
                      % report["per_level_cap"])
        ax.set_title("DMLab-30 (test levels)")
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.06), fontsize=7)
        fig.tight_layout()
        try:
            fig.savefig(path, dpi=100, bbox_inches="tight")
        except OSError as e:
            raise ReportError(
                f"cannot write plot {path!r}: {e.strerror or e}") from None
    finally:
        plt.close(fig)


def run(scores_paths, fmt="table", plot_path=None, out=None):
    """Reads ``scores_paths`` (a path, or a list of paths or directories,
    see :func:`score_files`), reports and optionally plots; returns the
    report dict."""
    if fmt not in FORMATS:
        raise ReportError(
            f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
    if isinstance(scores_paths, str):
        scores_paths = [scores_paths]
    report = build_report(read_scores(score_files(scores_paths)))
    (out or sys.stdout).write(format_report(report, fmt))
    if plot_path:
        plot_report(report, plot_path)
    return report


USAGE = ("usage: impala-tf dmlab30 report --scores=FILE_OR_DIR [--scores=...] "
         "[--format=table|json|markdown] [--plot=FILE.png]")


def _define_flags(flag_values):
    """The command's flags, in their own FlagValues (so the command runs
    inside another program without touching its flags)."""
    from absl import flags
    flags.DEFINE_multi_string(
        "scores", [], "CSV file with rows 'level,score' (a comma-separated "
        "list of them, or a directory: every test_scores.csv below it); "
        "repeatable.", flag_values=flag_values)
    flags.DEFINE_string("format", "table", "Output format: "
                        + ", ".join(FORMATS) + ".", flag_values=flag_values)
    flags.DEFINE_string("plot", None, "Optional PNG file for a bar chart.",
                        flag_values=flag_values)


def _run_flags(flag_values):
    if not flag_values.scores:
        raise ReportError("--scores=FILE.csv is required")
    run(flag_values.scores, flag_values.format, flag_values.plot)


def main(argv):
    """Runs the command on ``argv`` (the arguments after its name);
    returns the exit status: 0, or 2 after one ``error:`` line
    (`impala_tf.cli.small_command`)."""
    from impala_tf.cli import small_command
    return small_command.run(argv, "dmlab30.report", _define_flags,
                             _run_flags, USAGE, __doc__.split("\n\n")[0])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
