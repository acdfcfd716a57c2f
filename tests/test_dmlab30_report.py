"""dmlab30.report: the report's arithmetic against the paper, its formats
and command line; its inputs (several CSV files, directories of runs, files
joined with their headers repeated) and `main(argv)`, the suite command.
"""

import io
import json
import os
import subprocess
import sys

import pytest

import dmlab30
from dmlab30 import levels
from dmlab30 import report

HEADER = "level,score,episode,frames\n"  # What `impala-tf test` writes.
PAPER = levels.PAPER_TABLE_B1["impala_experts_deep"]
REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _table_b1(column):
    return dict(levels.PAPER_TABLE_B1[column])


def _write_csv(path, rows, header=True):
    with open(path, "w") as f:
        if header:
            f.write("level,score\n")
        for level, score in rows:
            f.write(f"{level},{score}\n")
    return str(path)


def _run_cli(*args):
    return subprocess.run(
        [sys.executable, "-m", "dmlab30.report", *args], cwd=REPO_ROOT,
        capture_output=True, text=True, timeout=120)


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
    assert err.startswith("error: ") and "none" in err
    assert len(err.splitlines()) == 1


# -- report library --------------------------------------------------------


def test_read_scores_csv_averages_and_maps(tmp_path):
    rows = list(_table_b1("impala_experts_deep").items())
    rows = [("rooms_collect_good_objects_train" if level ==
             "rooms_collect_good_objects_test" else level, score)
            for level, score in rows]
    rows += [("dmlab/rooms_watermaze", 20.0), ("rooms_watermaze", 30.0)]
    path = _write_csv(tmp_path / "s.csv", rows, header=False)
    scores = report.read_scores_csv(path)
    assert list(scores) == list(dmlab30.TEST_LEVELS)
    assert scores["rooms_collect_good_objects_test"] == 9.0
    assert scores["rooms_watermaze"] == pytest.approx((26.9 + 20 + 30) / 3)


@pytest.mark.parametrize("content, match", [
    ("level,score\nrooms_watermaze,abc\n", "not a number"),
    ("level,score\nnot_a_level,1\n", "not_a_level"),
    ("level,score\n", "no 'level,score' rows"),
    ("level,score\nrooms_watermaze,1\n", "lacks 29 of the 30"),
    ("level,score\nrooms_watermaze\n", "expected a row"),
])
def test_read_scores_csv_errors(tmp_path, content, match):
    path = tmp_path / "bad.csv"
    path.write_text(content)
    with pytest.raises(report.ReportError, match=match):
        report.read_scores_csv(str(path))
    with pytest.raises(report.ReportError, match="cannot read"):
        report.read_scores_csv(str(tmp_path / "missing.csv"))


def test_build_and_format_report():
    rep = report.build_report(_table_b1("impala_deep_pbt"))
    assert rep["mean_capped"] == pytest.approx(49.359, abs=1e-3)
    assert rep["mean_uncapped"] == pytest.approx(52.786, abs=1e-3)
    assert len(rep["levels"]) == 30
    row = rep["levels"][5]
    assert row["level"] == "language_select_described_object"
    assert row["normalized"] > 100 and row["normalized_capped"] == 100
    assert row["paper_table_b1"] == {"impala_experts_deep": 324.6,
                                     "impala_deep_pbt": 593.1}
    assert rep["paper"]["impala_experts_deep"]["mean_capped_table_3"] == 44.5
    json.loads(report.format_report(rep, "json"))
    table = report.format_report(rep, "table")
    assert "MEAN CAPPED" in table and "49.4" in table
    markdown = report.format_report(rep, "markdown")
    assert markdown.startswith("| level |") and "| ---: |" in markdown
    with pytest.raises(report.ReportError):
        report.format_report(rep, "xml")


def test_run_table_in_process(tmp_path):
    path = _write_csv(tmp_path / "s.csv",
                      _table_b1("impala_experts_deep").items())
    out = io.StringIO()
    rep = report.run(path, "table", out=out)
    assert rep["mean_capped"] == pytest.approx(44.5, abs=0.1)
    lines = out.getvalue().splitlines()
    assert lines[0].split()[0] == "level"
    assert any(line.startswith("rooms_watermaze") for line in lines)


# -- the CLI, in a subprocess -----------------------------------------------


def test_cli_json_and_plot(tmp_path):
    path = _write_csv(tmp_path / "s.csv",
                      _table_b1("impala_experts_deep").items())
    plot = tmp_path / "plot.png"
    result = _run_cli(f"--scores={path}", "--format=json", f"--plot={plot}")
    assert result.returncode == 0, result.stderr
    rep = json.loads(result.stdout)
    assert rep["mean_capped"] == pytest.approx(44.5, abs=0.1)
    assert rep["mean_uncapped"] == pytest.approx(45.078, abs=1e-3)
    assert [r["level"] for r in rep["levels"]] == list(dmlab30.TEST_LEVELS)
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cli_markdown(tmp_path):
    path = _write_csv(tmp_path / "s.csv",
                      _table_b1("impala_deep_pbt").items())
    result = _run_cli("--scores", path, "--format=markdown")
    assert result.returncode == 0, result.stderr
    assert "| **MEAN CAPPED** |" in result.stdout
    assert "**49.4**" in result.stdout


@pytest.mark.parametrize("case", ["missing_level", "bad_format", "no_flag"])
def test_cli_bad_input_exits_2_without_traceback(tmp_path, case):
    rows = dict(_table_b1("impala_experts_deep"))
    del rows["rooms_keys_doors_puzzle"]
    path = _write_csv(tmp_path / "s.csv", rows.items())
    args = {"missing_level": [f"--scores={path}"],
            "bad_format": [f"--scores={path}", "--format=xml"],
            "no_flag": []}[case]
    result = _run_cli(*args)
    assert result.returncode == 2
    assert result.stdout == ""
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    expected = {"missing_level": "rooms_keys_doors_puzzle",
                "bad_format": "xml", "no_flag": "--scores"}[case]
    assert expected in lines[0]
