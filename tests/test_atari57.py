"""Tests for the atari57 package: data, assignment and the score report."""

import csv
import json
import os
import pathlib
import subprocess
import sys

import pytest

import atari57
from atari57 import report

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
