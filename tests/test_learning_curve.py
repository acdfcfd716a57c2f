"""Tests for impala_tf/cli/learning_curve.py, as a real process.

`--plot_only` and `--dry_run` need no training; they run on progress.jsonl
files written by the trainer's own writer (`testing.write_progress`) with
made-up returns. One short real training run on the toy level is marked
slow.
"""

import json
import os
import subprocess
import sys

import pytest

from impala_tf import testing
from impala_tf.runtime import progress
from impala_tf.runtime import sweep

FRAMES_PER_RECORD = 1_000_000
SEED_1 = [None, -21, -20, -15, -8, 0, 7, 18, 19]
SEED_2 = [None, -21, -21, -19, -15, -10, -2, 3, 12]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    base = tmp_path_factory.mktemp("curves")
    for seed, returns in ((1, SEED_1), (2, SEED_2)):
        testing.write_progress(base / f"seed_{seed}", returns,
                               FRAMES_PER_RECORD, level="pong",
                               num_action_repeats=4, episode_steps=100)
    return base


def _curve_tool(args, timeout=180):
    return subprocess.run(
        [sys.executable, "-m", "impala_tf.cli.learning_curve"] + args,
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
    # The plot's lines: --reference, then Pong's random and human scores.
    assert numbers["references"] == [["reference 18", 18],
                                     ["random -20.7", -20.7],
                                     ["human 14.6", 14.6]]
    assert numbers["seeds"]["1"]["frames_to"] == {
        "-15": 4_000_000, "0": 6_000_000, "+18": 8_000_000}
    assert numbers["seeds"]["2"]["final_return"] == 12
    assert numbers["across_seeds"]["+18"] == {
        "median": 8_000_000, "min": 8_000_000, "max": 8_000_000,
        "reached": 1, "seeds": 2}
    table = result.stdout
    assert "frames to -15" in table and "frames to +18" in table
    assert "seed 1" in table and "seed 2" in table and "median" in table


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


def test_parallel_seeds_that_fail_each_say_where_their_output_is(tmp_path):
    """Two seeds at once whose trainers refuse the configuration at start
    (a batch of 8 with 8 replayed): both run, both fail, each error line
    names the file with that trainer's own message."""
    result = _curve_tool([
        "--flagfile=configs/pong_fast.cfg", "--replay_proportion=0.99",
        f"--logdir={tmp_path}", "--frames=1000", "--seeds=1,2",
        "--parallel=2", f"--out={tmp_path / 'curve'}"])
    assert result.returncode == 2, result.stdout + result.stderr
    for seed in (1, 2):
        log = tmp_path / f"seed_{seed}.log"
        assert (f"error: seed {seed}'s training exited with status 2 (its "
                f"output: {log})") in result.stderr
        assert "at least one must be fresh" in log.read_text()
    assert "Traceback" not in result.stderr
    assert not os.path.exists(tmp_path / "curve.png")


@pytest.mark.slow
def test_trains_two_seeds_at_once_then_resumes_and_skips_them(tmp_path):
    """A real run: the toy level for a few thousand frames, two seeds
    trained at once (--parallel=2, each one's output in its own file), the
    configuration from a flagfile and the command line; the same command
    again finds both seeds done and only redraws."""
    config = tmp_path / "toy.cfg"
    config.write_text("# A toy configuration.\n"
                      f"--level_name={testing.TOY_LEVEL}\n"
                      "--nouse_lstm\n--batch_size=8\n--unroll_length=10\n"
                      "--learning_rate_decay_frames=1000000\n")
    args = [f"--flagfile={config}", "--batch_size=4",  # Overrides the file.
            "--num_actors=1", "--log_interval_s=0.5",
            f"--logdir={tmp_path}", "--frames=2000",
            f"--out={tmp_path / 'curve'}", "--seeds=3,4", "--parallel=2",
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
    assert command[-2:] == ["(output:", f"{tmp_path / 'seed_3.log'})"]
    numbers = json.loads((tmp_path / "s.json").read_text())
    for seed in (3, 4):
        seed_rows = sweep.read_curve(str(tmp_path / f"seed_{seed}"))
        assert seed_rows and seed_rows[-1]["env_frames"] >= 2000
        assert os.path.exists(tmp_path / f"seed_{seed}" / "checkpoints")
        assert numbers["seeds"][str(seed)]["final_frames"] == seed_rows[-1][
            "env_frames"]
        # Each trainer's own output, not this tool's, is in its file.
        assert "[impala]" in (tmp_path / f"seed_{seed}.log").read_text()
        assert f"seed {seed}: ended with status 0" in result.stdout
    assert "[impala]" not in result.stdout
    rows = sweep.read_curve(str(tmp_path / "seed_3"))

    again = _curve_tool(args, timeout=400)
    assert again.returncode == 0, again.stderr
    done = rows[-1]["env_frames"]
    assert (f"seed 3: done in {tmp_path / 'seed_3'} (at {done:,} of 2,000 "
            "frames)") in again.stdout
    assert f"seed 4: done in {tmp_path / 'seed_4'}" in again.stdout
    assert sweep.read_curve(str(tmp_path / "seed_3")) == rows
    # A far frame target, but the run's last 100 games already reach
    # --stop_at_return: nothing to train either.
    assert progress.read_records(str(tmp_path / "seed_3"))[-1][
        "episodes"] >= 100
    reached = _curve_tool(args + ["--frames=1000000",
                                  "--stop_at_return=-1000"], timeout=400)
    assert reached.returncode == 0, reached.stderr
    assert (f"seed 3: done in {tmp_path / 'seed_3'} (at {done:,} of "
            "1,000,000 frames)") in reached.stdout
    assert sweep.read_curve(str(tmp_path / "seed_3")) == rows
