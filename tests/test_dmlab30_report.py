"""dmlab30.report's inputs: several CSV files, directories of runs, files
joined with their headers repeated; and `main(argv)`, the suite command.

(The report's arithmetic against the paper is in tests/test_dmlab30.py.)
"""

import json

import pytest

import dmlab30
from dmlab30 import levels
from dmlab30 import report

HEADER = "level,score,episode,frames\n"  # What `impala-tf test` writes.
PAPER = levels.PAPER_TABLE_B1["impala_experts_deep"]


def _write(path, rows):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(HEADER + "".join(
        f"{level},{score},{i},100\n" for i, (level, score) in enumerate(rows)))
    return str(path)


def test_files_joined_with_cat_and_split_over_files(tmp_path):
    half = len(dmlab30.TEST_LEVELS) // 2
    first = [(lv, PAPER[lv]) for lv in dmlab30.TEST_LEVELS[:half]]
    second = [(lv, PAPER[lv]) for lv in dmlab30.TEST_LEVELS[half:]]
    a, b = _write(tmp_path / "a.csv", first), _write(tmp_path / "b.csv",
                                                     second)
    joined = tmp_path / "joined.csv"
    joined.write_text(open(a).read() + open(b).read())
    assert report.read_scores_csv(str(joined)) == report.read_scores([a, b])
    with pytest.raises(report.ReportError, match="lacks 15 of the 30"):
        report.read_scores_csv(a)


def test_rows_average_over_files_and_a_directory(tmp_path):
    rows = [(lv, PAPER[lv]) for lv in dmlab30.TEST_LEVELS]
    _write(tmp_path / "runs" / "one" / "test_scores.csv", rows)
    # The same levels again, 10 points higher: the means move by 5.
    _write(tmp_path / "runs" / "two" / "test_scores.csv",
           [(lv, s + 10) for lv, s in rows])
    scores = report.read_scores(report.score_files([str(tmp_path / "runs")]))
    for level in dmlab30.TEST_LEVELS:
        assert scores[level] == pytest.approx(PAPER[level] + 5)


def test_main_in_process(tmp_path, capsys):
    _write(tmp_path / "run" / "test_scores.csv",
           [(lv, PAPER[lv]) for lv in dmlab30.TEST_LEVELS])
    assert report.main([f"--scores={tmp_path}", "--format=json"]) == 0
    rep = json.loads(capsys.readouterr().out)
    assert rep["mean_capped"] == pytest.approx(44.5, abs=0.1)
    assert report.main(["--help"]) == 0
    assert capsys.readouterr().out.startswith("usage: impala-tf dmlab30 report")
    assert report.main(["--scores=" + str(tmp_path / "none")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("dmlab30.report: error: ") and "none" in err
