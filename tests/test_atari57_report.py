"""atari57.report's inputs: several CSV files, directories of runs, files
joined with their headers repeated; and `main(argv)`, the suite command.

(The report's arithmetic against the paper is in tests/test_atari57.py.)
"""

import json

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
