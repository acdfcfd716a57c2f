"""Tests for benchmarks/table1_learning.py: the Table 1 modes' Pong runs
read back, frames to each threshold, the target verdict, and the files it
writes, from progress files written by the trainer's own writer
(`testing.write_progress`) with made-up returns."""

import json
import subprocess
import sys

import pytest

from benchmarks import table1_learning
from impala_tf import testing


@pytest.fixture(scope="module")
def runs_dir(tmp_path_factory):
    base = tmp_path_factory.mktemp("table1_pong")
    # 1,000 frames per record; a full window from the 100th record on.
    testing.write_progress(base / "impala" / "seed_3",
                           [-21.0] * 100 + [-18.0, -14.0, -12.0], 1000)
    testing.write_progress(base / "a3c" / "seed_3",
                           [-21.0] * 100 + [-19.0, -18.0, -16.0], 1000)
    testing.write_progress(base / "a2c_sync_step" / "seed_3",
                           [-21.0] * 50, 1000)
    return base


def test_reads_each_mode_found_in_table_1_order(runs_dir):
    runs = table1_learning.read_runs(str(runs_dir), [3, 4])
    assert list(runs) == ["impala seed 3", "a2c_sync_step seed 3",
                          "a3c seed 3"]
    assert runs["impala seed 3"][-1]["env_frames"] == 103_000


def test_frames_to_thresholds_and_the_target_verdict(runs_dir):
    runs = table1_learning.read_runs(str(runs_dir), [3])
    numbers = table1_learning.summarize(runs, [-19, -15], -15, 102_000)
    impala = numbers["impala seed 3"]
    assert impala["frames_to"] == {"-19": 101_000, "-15": 102_000}
    assert impala["met"] is True
    assert numbers["a3c seed 3"]["frames_to"] == {"-19": 101_000,
                                                  "-15": None}
    assert numbers["a3c seed 3"]["met"] is False
    # 50,000 frames of 102,000: not there yet.
    assert numbers["a2c_sync_step seed 3"]["met"] is None
    # A later target frame count still counts the same frames.
    assert table1_learning.summarize(runs, [-19], -15, 101_000)[
        "impala seed 3"]["met"] is False


def test_command_line_writes_table_json_csv_and_plot(runs_dir, tmp_path):
    out = tmp_path / "t1"
    result = subprocess.run(
        [sys.executable, "-m", "benchmarks.table1_learning",
         f"--logdir={runs_dir}", "--seeds=3", "--thresholds=-19,-15",
         "--target_frames=102000", f"--out={out}"],
        cwd=testing.REPO, text=True, capture_output=True, timeout=300)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert "-15 by 102,000" in lines[0]
    impala = [l for l in lines if l.strip().startswith("impala seed 3")][0]
    assert impala.split()[-1] == "yes" and "102,000" in impala
    assert [l for l in lines if "a2c_sync_step" in l][0].endswith("not yet")
    report = json.loads((tmp_path / "t1.json").read_text())
    assert report["machine"]["cpus"] >= 1
    assert report["runs"]["a3c seed 3"]["met"] is False
    assert (tmp_path / "t1.csv").read_text().count("a3c seed 3") == 103
    with open(tmp_path / "t1.png", "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("args, message", [
    (["--seeds=x"], "--seeds must be a comma-separated list of ints"),
    (["--seeds=7"], "no <mode>/seed_<s>/progress.jsonl under"),
])
def test_bad_input_is_one_error_and_exit_2(runs_dir, args, message):
    result = subprocess.run(
        [sys.executable, "-m", "benchmarks.table1_learning",
         f"--logdir={runs_dir}"] + args,
        cwd=testing.REPO, text=True, capture_output=True, timeout=300)
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr
