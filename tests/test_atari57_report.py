"""atari57.report: the paper's medians from its Table C.1, the formats and
the command line; its inputs (several CSV files, directories of runs, files
joined with their headers repeated) and `main(argv)`, the suite command.
"""

import csv
import json
import os
import pathlib
import subprocess
import sys

import pytest

import atari57
from atari57 import report

HEADER = "game,score,episode,frames\n"  # What `impala-tf test` writes.


def _paper(game, column="deep_experts"):
    return getattr(atari57.GAMES[game], column)


def _write(path, rows, header=HEADER):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(header + "".join(
        f"{game},{score},{i},1000\n" for i, (game, score) in enumerate(rows)))
    return str(path)


def test_repeated_header_is_skipped(tmp_path):
    """`cat a.csv b.csv`: the second header is not read as a game."""
    a = _write(tmp_path / "a.csv", [("pong", 1.0), ("pong", 3.0)])
    b = _write(tmp_path / "b.csv", [("breakout", 10.0)])
    joined = tmp_path / "joined.csv"
    joined.write_text(open(a).read() + open(b).read())
    assert report.load_scores_csv(str(joined)) == {
        "pong": [1.0, 3.0], "breakout": [10.0]}


def test_scores_pool_over_files_and_directories(tmp_path):
    runs = tmp_path / "runs"
    _write(runs / "pong" / "test_scores.csv", [("pong", 2.0)])
    _write(runs / "breakout" / "test_scores.csv", [("breakout", 5.0)])
    (runs / "breakout" / "other.csv").write_text("not,a,score,file\n")
    extra = _write(tmp_path / "extra.csv", [("pong", 4.0)])
    files = report.score_files([str(runs), extra])
    # Only the test_scores.csv files below the directory, sorted.
    assert files == [str(runs / "breakout" / "test_scores.csv"),
                     str(runs / "pong" / "test_scores.csv"), extra]
    assert report.load_scores(files) == {"breakout": [5.0],
                                         "pong": [2.0, 4.0]}
    # A comma-separated list is the same as separate values; each file once.
    assert report.score_files([f"{extra},{extra}"]) == [extra]


def test_score_files_errors(tmp_path):
    with pytest.raises(report.ReportError, match="holds no test_scores.csv"):
        report.score_files([str(tmp_path)])
    with pytest.raises(report.ReportError, match="cannot read scores file"):
        report.score_files([str(tmp_path / "missing.csv")])
    with pytest.raises(report.ReportError, match="no scores file"):
        report.score_files([""])


def test_main_reads_a_directory_of_57_runs(tmp_path, capsys):
    for game in atari57.ALL_GAMES:
        _write(tmp_path / game / "test_scores.csv", [(game, _paper(game))])
    assert report.main([f"--scores={tmp_path}", "--format=json"]) == 0
    parsed = json.loads(capsys.readouterr().out)
    assert parsed["num_games"] == 57
    # The paper's deep experts' own scores give its Table 4 median.
    assert round(parsed["summary"]["median"], 1) == 191.8


def test_main_help_and_bad_input(tmp_path, capsys):
    assert report.main(["--help"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: impala-tf atari57 report")
    assert "--allow_partial" in out and "--scores" in out
    assert report.main([]) == 2
    assert capsys.readouterr().err == "error: --scores FILE.csv is required\n"
    assert report.main(["--format=xml", "--scores=x.csv"]) == 2
    assert capsys.readouterr().err.startswith("error: ")
    assert report.main([f"--scores={tmp_path}"]) == 2
    assert "holds no test_scores.csv" in capsys.readouterr().err


REPO = pathlib.Path(__file__).resolve().parents[1]
PAPER_MEDIANS = {"shallow_experts": 93.2, "deep_experts": 191.8,
                 "deep_multitask": 59.7}


def _write_scores(path, rows):
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["game", "score"])
        writer.writerows(rows)
    return str(path)


def _paper_rows(column, games=atari57.ALL_GAMES):
    return [(g, getattr(atari57.GAMES[g], column)) for g in games]


def _cli(*args):
    env = dict(os.environ, PYTHONPATH=str(REPO))
    return subprocess.run([sys.executable, "-m", "atari57.report", *args],
                          cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=120)


@pytest.mark.parametrize("column", sorted(PAPER_MEDIANS))
def test_report_reproduces_paper_medians(column):
    result = report.compute_report(dict(_paper_rows(column)))
    assert result["num_games"] == 57 and not result["partial"]
    assert round(result["summary"]["median"], 1) == PAPER_MEDIANS[column]
    assert round(result["paper"][column]["median"], 1) == PAPER_MEDIANS[column]
    assert result["paper"][column]["reported_median"] == PAPER_MEDIANS[column]


def test_repeated_rows_are_averaged(tmp_path):
    rows = _paper_rows("deep_experts") + [("pong", 0.0), ("pong", 21.0),
                                          ("breakout", 100.0)]
    path = _write_scores(tmp_path / "s.csv", rows)
    scores = report.load_scores_csv(path)
    assert scores["pong"] == [20.98, 0.0, 21.0]
    result = report.compute_report(scores)
    by_game = {r["game"]: r for r in result["games"]}
    assert by_game["pong"]["score"] == pytest.approx((20.98 + 21.0) / 3)
    assert by_game["pong"]["num_episodes"] == 3
    assert by_game["breakout"]["score"] == pytest.approx((787.34 + 100) / 2)
    assert by_game["alien"]["num_episodes"] == 1


def test_formats():
    result = report.compute_report(dict(_paper_rows("shallow_experts")))
    table = report.format_report(result, "table")
    assert "median (over 57 games)" in table and "93.2%" in table
    assert "space_invaders" in table
    markdown = report.format_report(result, "markdown")
    assert "| game | n | score | norm |" in markdown
    assert "|:---|" in markdown
    parsed = json.loads(report.format_report(result, "json"))
    assert parsed["num_games"] == 57
    assert len(parsed["games"]) == 57


def test_library_errors():
    with pytest.raises(report.ReportError, match="56 of 57 games have no "
                                                 "score"):
        report.compute_report({"pong": 1.0})
    partial = report.compute_report({"pong": 1.0}, allow_partial=True)
    assert partial["partial"] and len(partial["missing"]) == 56
    with pytest.raises(report.ReportError, match="unknown Atari game"):
        report.compute_report({"pong": 1.0, "not_a_game": 2.0},
                              allow_partial=True)


def test_cli_json_and_plot(tmp_path):
    path = _write_scores(tmp_path / "s.csv", _paper_rows("deep_multitask"))
    plot = tmp_path / "plot.png"
    proc = _cli("--scores", path, "--format=json", "--plot", str(plot))
    assert proc.returncode == 0, proc.stderr
    parsed = json.loads(proc.stdout)
    assert round(parsed["summary"]["median"], 1) == 59.7
    with open(plot, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("fmt", ["table", "markdown"])
def test_cli_text_formats(tmp_path, fmt):
    path = _write_scores(tmp_path / "s.csv", _paper_rows("deep_experts"))
    proc = _cli("--scores", path, f"--format={fmt}")
    assert proc.returncode == 0, proc.stderr
    assert "191.8%" in proc.stdout and "zaxxon" in proc.stdout


def test_cli_missing_game_exits_2_and_allow_partial(tmp_path):
    games = [g for g in atari57.ALL_GAMES if g not in ("pong", "zaxxon")]
    path = _write_scores(tmp_path / "s.csv", _paper_rows("deep_experts", games))
    proc = _cli("--scores", path)
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert proc.stderr.startswith("error: 2 of 57 games have no score "
                                  "(pong, zaxxon)")
    assert "--allow_partial" in proc.stderr
    assert "Traceback" not in proc.stderr

    proc = _cli("--scores", path, "--allow_partial")
    assert proc.returncode == 0, proc.stderr
    assert "2 of 57 games missing (pong, zaxxon)" in proc.stderr
    assert "median (over the same 55 games)" in proc.stdout


@pytest.mark.parametrize("content,message", [
    ("game,score\npong,1\nnot_a_game,3\n",
     "line 3: unknown Atari game 'not_a_game'"),
    ("game,score\npong,abc\n", "line 2: score 'abc' for 'pong' is not a "
                               "number"),
    ("name,value\npong,1\n", "header with the columns 'game' and 'score'"),
    (None, "cannot read scores file"),
])
def test_cli_bad_input_exits_2_without_traceback(tmp_path, content, message):
    path = tmp_path / "s.csv"
    if content is not None:
        path.write_text(content)
    proc = _cli("--scores", str(path), "--allow_partial")
    assert proc.returncode == 2
    assert proc.stderr.startswith("error: ")
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr
