"""Tests for benchmarks/learning_curve.py.

The reading, threshold, CSV and plotting code runs on progress.jsonl files
written by the trainer's own writer (`progress.ProgressLogger`) with
made-up returns; the command line runs as a real process (`--plot_only`
needs no training). One short real training run on the toy level, in a
private network namespace, is marked slow.
"""

import csv
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from benchmarks import learning_curve as lc
from impala_tf import testing

TESTS_DIR = os.path.dirname(os.path.abspath(__file__))
if TESTS_DIR not in sys.path:
    sys.path.insert(0, TESTS_DIR)

import procs  # noqa: E402  pylint: disable=wrong-import-position

FRAMES_PER_RECORD = 1_000_000


def write_run(logdir, returns):
    """A Pong run's progress.jsonl (`testing.write_progress`),
    FRAMES_PER_RECORD frames per record."""
    return testing.write_progress(logdir, returns, FRAMES_PER_RECORD,
                                  level="pong", num_action_repeats=4,
                                  episode_steps=100)


SEED_1 = [None, -21, -20, -15, -8, 0, 7, 18, 19]
SEED_2 = [None, -21, -21, -19, -15, -10, -2, 3, 12]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    base = tmp_path_factory.mktemp("curves")
    write_run(base / "seed_1", SEED_1)
    write_run(base / "seed_2", SEED_2)
    return base


def test_read_curve_reads_the_trainers_records(runs):
    rows = lc.read_curve(str(runs / "seed_1"))
    assert [r["env_frames"] for r in rows] == [
        (i + 1) * FRAMES_PER_RECORD for i in range(len(SEED_1))]
    assert [r[lc.RETURN_KEY] for r in rows] == SEED_1
    assert all(r["fps"] >= 0 and r["elapsed_s"] >= 0 for r in rows)


def test_read_curve_after_a_resume_keeps_frames_increasing(tmp_path):
    """A run killed at 5M frames resumed from its 3M-frame checkpoint: the
    records it logged past 3M are replaced by the resumed run's."""
    path = tmp_path / "progress.jsonl"
    records = [(1, -21.0), (2, -20.0), (3, -19.0), (4, -18.0), (5, -17.0),
               (3.5, -10.0), (4.5, -9.0), (6, -8.0)]
    path.write_text("".join(
        json.dumps({"env_frames": int(f * 1e6), "fps": 1.0, "elapsed_s": 0,
                    lc.RETURN_KEY: ret}) + "\n" for f, ret in records)
        + '{"env_frames": 7000')  # A line being written.
    rows = lc.read_curve(str(tmp_path))
    assert [r["env_frames"] / 1e6 for r in rows] == [1, 2, 3, 3.5, 4.5, 6]
    assert [r[lc.RETURN_KEY] for r in rows] == [
        -21, -20, -19, -10, -9, -8]


def test_read_curve_without_a_run_is_a_usage_error(tmp_path):
    with pytest.raises(lc.UsageError, match="progress.jsonl does not exist"):
        lc.read_curve(str(tmp_path))
    (tmp_path / "progress.jsonl").write_text('{"env_frames": 1}\nnot json\n')
    with pytest.raises(lc.UsageError, match="line 2 is not JSON"):
        lc.read_curve(str(tmp_path))


def test_frames_to_reach_is_the_first_crossing(runs):
    rows = lc.read_curve(str(runs / "seed_1"))
    assert lc.frames_to_reach(rows, -15) == 4 * FRAMES_PER_RECORD
    assert lc.frames_to_reach(rows, 0) == 6 * FRAMES_PER_RECORD
    assert lc.frames_to_reach(rows, 18) == 8 * FRAMES_PER_RECORD
    assert lc.frames_to_reach(rows, 20) is None
    dip = [dict(r) for r in rows]
    dip[5][lc.RETURN_KEY] = -30  # Falling back does not move the crossing.
    assert lc.frames_to_reach(dip, -15) == 4 * FRAMES_PER_RECORD


def test_summarize(runs):
    rows = lc.read_curve(str(runs / "seed_2"))
    numbers = lc.summarize(rows, [-15, 0, 18])
    assert numbers["frames_to"] == {"-15": 5 * FRAMES_PER_RECORD,
                                    "0": 8 * FRAMES_PER_RECORD, "+18": None}
    assert numbers["final_return"] == 12
    assert numbers["final_frames"] == 9 * FRAMES_PER_RECORD


def test_mean_curve_interpolates_over_the_shared_range():
    a = [{"env_frames": f, lc.RETURN_KEY: r}
         for f, r in [(0, 0.0), (10, 10.0)]]
    b = [{"env_frames": f, lc.RETURN_KEY: r}
         for f, r in [(2, 2.0), (4, None), (6, -2.0), (12, 4.0)]]
    mean = lc.mean_curve({1: a, 2: b}, points=5)
    assert [m["env_frames"] for m in mean] == [2, 4, 6, 8, 10]
    # a(f) = f; b: 2 at 2, -2 at 6 (None skipped), then +1 per frame.
    expected = [(2 + 2) / 2, (4 + 0) / 2, (6 - 2) / 2, (8 + 0) / 2,
                (10 + 2) / 2]
    np.testing.assert_allclose([m[lc.RETURN_KEY] for m in mean], expected)
    assert lc.mean_curve({1: a, 2: [{"env_frames": 1,
                                     lc.RETURN_KEY: None}]}) == []


def test_write_csv(runs, tmp_path):
    curves = {s: lc.read_curve(str(runs / f"seed_{s}")) for s in (1, 2)}
    lc.write_csv(curves, str(tmp_path / "c.csv"))
    with open(tmp_path / "c.csv") as f:
        rows = list(csv.reader(f))
    assert tuple(rows[0]) == lc.CSV_COLUMNS
    assert len(rows) == 1 + len(SEED_1) + len(SEED_2)
    assert rows[1][0] == "1" and rows[1][4] == ""  # No episode yet.
    assert rows[-1][0] == "2" and float(rows[-1][4]) == 12
    assert int(rows[-1][1]) == 9 * FRAMES_PER_RECORD


def test_plot_has_a_line_per_seed_the_mean_and_fps_below(runs, tmp_path):
    curves = {s: lc.read_curve(str(runs / f"seed_{s}")) for s in (1, 2)}
    fig = lc.plot(curves, str(tmp_path / "c.png"), "title here",
                  reference=18, reference_label="target +18")
    top, bottom = fig.axes  # Two panels, no twin axis.
    labels = [line.get_label() for line in top.get_lines()]
    assert labels == ["seed 1", "seed 2", "mean of 2 seeds", "target +18"]
    assert top.get_lines()[-1].get_linestyle() == "--"
    assert [line.get_label() for line in bottom.get_lines()] == [
        "seed 1", "seed 2"]
    assert bottom.get_ylabel() == "frames/s"
    assert top.get_title() == "title here"
    with open(tmp_path / "c.png", "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"


def test_plot_one_seed_has_no_mean(runs, tmp_path):
    fig = lc.plot({1: lc.read_curve(str(runs / "seed_1"))},
                  str(tmp_path / "c.png"), "t")
    assert [line.get_label() for line in fig.axes[0].get_lines()] == [
        "seed 1"]


def _curve_tool(args, timeout=180):
    return subprocess.run(
        [sys.executable, "-m", "benchmarks.learning_curve"] + args,
        cwd=testing.REPO, text=True, capture_output=True, timeout=timeout)


def test_plot_only_command_line(runs, tmp_path):
    out = tmp_path / "curve"
    summary = tmp_path / "summary.json"
    result = _curve_tool([
        "--flagfile=configs/pong_fast.cfg", "--plot_only",
        f"--logdir={runs}", "--seeds=1,2", f"--out={out}",
        "--reference=18", "--thresholds=-15,0,18",
        f"--summary_json={summary}"])
    assert result.returncode == 0, result.stderr
    assert os.path.getsize(f"{out}.png") > 0
    assert os.path.getsize(f"{out}.csv") > 0
    numbers = json.loads(summary.read_text())
    assert numbers["config"] == "pong_fast"
    assert numbers["level_name"] == "atari/pong"
    assert numbers["frames"] == 20_000_000  # The file's frame target.
    assert numbers["seeds"]["1"]["frames_to"] == {
        "-15": 4_000_000, "0": 6_000_000, "+18": 8_000_000}
    assert numbers["seeds"]["2"]["final_return"] == 12
    assert numbers["mean_of_seeds"]["frames_to"]["+18"] is None
    table = result.stdout
    assert "frames to -15" in table and "frames to +18" in table
    assert "seed 1" in table and "seed 2" in table and "mean" in table


def _commands(args):
    result = _curve_tool(["--dry_run", "--logdir=/tmp/never"] + args)
    assert result.returncode == 0, result.stderr
    return [line.split()[3:] for line in result.stdout.splitlines()]


@pytest.mark.parametrize("args, schedule", [
    # The paper's file runs 20M frames of its 200M-frame schedule.
    (["--flagfile=configs/atari_shallow_expert.cfg"], 200_000_000),
    # pong_fast.cfg sets its schedule apart from its frame target.
    (["--flagfile=configs/pong_fast.cfg"], 200_000_000),
    # No flagfile: the suite's frame target (Atari: 200M).
    (["--level_name=atari/pong"], 200_000_000),
    (["--flagfile=configs/atari_shallow_expert.cfg",
      "--total_environment_frames=50000000"], 50_000_000),
    (["--flagfile=configs/pong_fast.cfg",
      "--learning_rate_decay_frames=30000000"], 30_000_000),
])
def test_runs_keep_the_configurations_schedule(args, schedule):
    (command,) = _commands(args + ["--frames=20000000"])
    assert command[-2:] == ["--total_environment_frames=20000000",
                            f"--learning_rate_decay_frames={schedule}"]


def test_dry_run_passes_the_configuration_on(tmp_path):
    commands = _commands(["--flagfile=configs/pong_fast.cfg",
                          "--epsilon=0.001", "--seeds=1,2"])
    assert len(commands) == 2
    for seed, command in zip((1, 2), commands):
        assert command[:2] == ["-m", "impala_tf.cli.experiment"]
        for flag in ("--level_name=atari/pong", "--batch_size=8",
                     "--epsilon=0.001", "--nouse_lstm",
                     f"--logdir=/tmp/never/seed_{seed}", f"--seed={seed}",
                     "--total_environment_frames=20000000",
                     "--learning_rate_decay_frames=200000000"):
            assert flag in command, (flag, command)
        assert "--epsilon=1e-05" not in command
    assert not os.path.exists("/tmp/never")


@pytest.mark.parametrize("args, fragment", [
    (["--seeds=one"], "--seeds must be a comma-separated list of ints"),
    (["--thresholds=a,b"], "--thresholds must be"),
    (["--seeds=3"], "seed_3/progress.jsonl does not exist"),
    (["--no_such_flag=1"], "no_such_flag"),
    (["--level_name=atari/pongg"], "unknown Atari game 'pongg'"),
])
def test_bad_input_is_one_sentence_and_exit_2(runs, args, fragment):
    result = _curve_tool(["--plot_only", f"--logdir={runs}"] + args)
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith("error: "), result.stderr
    assert fragment in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.slow
@procs.requires_netns
def test_trains_a_seed_then_resumes_and_skips_it(tmp_path):
    """A real run: the toy level for a few thousand frames, one seed, its
    configuration from a flagfile and the command line; the same command
    again finds the seed done and only redraws."""
    config = tmp_path / "toy.cfg"
    config.write_text("# A toy configuration.\n"
                      f"--level_name={testing.TOY_LEVEL}\n"
                      "--nouse_lstm\n--batch_size=8\n--unroll_length=10\n"
                      "--learning_rate_decay_frames=1000000\n")
    args = [f"--flagfile={config}", "--batch_size=4",  # Overrides the file.
            "--num_actors=1", "--log_interval_s=0.5",
            f"--logdir={tmp_path}", "--frames=2000",
            f"--out={tmp_path / 'curve'}", "--seeds=3",
            f"--summary_json={tmp_path / 's.json'}"]
    result = _curve_tool(args, timeout=400)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr
    command = [l for l in result.stdout.splitlines()
               if l.startswith("[learning_curve] seed 3: ")][0].split()
    for flag in (f"--level_name={testing.TOY_LEVEL}",
                 "--nouse_lstm", "--batch_size=4", "--unroll_length=10",
                 "--learning_rate_decay_frames=1000000",
                 "--total_environment_frames=2000", "--seed=3",
                 f"--logdir={tmp_path / 'seed_3'}"):
        assert flag in command, (flag, command)
    assert "--batch_size=8" not in command
    rows = lc.read_curve(str(tmp_path / "seed_3"))
    assert rows and rows[-1]["env_frames"] >= 2000
    assert os.path.exists(tmp_path / "seed_3" / "checkpoints")
    numbers = json.loads((tmp_path / "s.json").read_text())
    assert numbers["seeds"]["3"]["final_frames"] == rows[-1]["env_frames"]

    again = _curve_tool(args, timeout=400)
    assert again.returncode == 0, again.stderr
    assert "seed 3: already at 2,000 frames" in again.stdout
    assert lc.read_curve(str(tmp_path / "seed_3")) == rows
