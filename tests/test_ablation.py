"""Tests for impala_tf/cli/ablation.py, the paper's Table 2 in one command.

The grid and each run's command line are checked as functions and through
the real command line (`--print_commands` trains nothing); the table, CSV
and plot from progress.jsonl files written by the trainer's own writer
(`progress.ProgressLogger`) with made-up returns; bad input through the
command line. One real run of the toy level, in a private network
namespace, is marked slow: two corrections, with replay too once the trainer
has it.
"""

import csv
import os
import shlex
import subprocess
import sys

import pytest

import dmlab30
from impala_tf.cli import ablation
from impala_tf import testing

TESTS_DIR = os.path.dirname(os.path.abspath(__file__))
if TESTS_DIR not in sys.path:
    sys.path.insert(0, TESTS_DIR)

import procs  # noqa: E402  pylint: disable=wrong-import-position

# The trainer's replay flags (issue 17); the tests cover the with-replay
# half wherever the trainer has them.
BOTH = [False, True]


def test_grid_is_corrections_then_replay_then_seeds():
    runs = ablation.grid(ablation.CORRECTIONS, [True, False], [3, 1])
    assert len(runs) == 4 * 2 * 2
    assert [r.index for r in runs] == list(range(16))
    assert runs[:5] == [
        ablation.Run(0, "vtrace", False, 3), ablation.Run(1, "vtrace", False, 1),
        ablation.Run(2, "vtrace", True, 3), ablation.Run(3, "vtrace", True, 1),
        ablation.Run(4, "1step_is", False, 3)]
    assert [r.correction for r in runs[::4]] == [
        "vtrace", "1step_is", "epsilon", "none"]
    for c in ablation.CORRECTIONS:  # The same seeds in every cell.
        for replay in (False, True):
            assert [r.seed for r in runs
                    if (r.correction, r.replay) == (c, replay)] == [3, 1]


def test_command_sets_each_runs_flags():
    run = ablation.Run(5, "epsilon", True, 7)
    argv = ablation.command(run, ["--level_name=atari/pong", "--batch_size=4"],
                            "/x", 3000, replay_proportion=0.25,
                            replay_capacity=50, python="py")
    assert argv == ["py", "-m", "impala_tf.cli.experiment",
                    "--level_name=atari/pong", "--batch_size=4",
                    "--logdir=/x/epsilon_replay1/seed_7", "--seed=7",
                    "--total_environment_frames=3000",
                    "--off_policy_correction=epsilon",
                    "--replay_proportion=0.25", "--replay_capacity=50"]
    off = ablation.command(run._replace(replay=False), [], "/x", 3000,
                           replay_proportion=0.25, replay_capacity=50)
    assert off[-2:] == ["--off_policy_correction=epsilon",
                        "--replay_proportion=0"]
    assert "--logdir=/x/epsilon_replay0/seed_7" in off


def _ablation(args, timeout=120):
    return subprocess.run(
        [sys.executable, "-m", "impala_tf.cli.ablation"] + args,
        cwd=testing.REPO, text=True, capture_output=True, timeout=timeout)


def _commands(args):
    result = _ablation(["--print_commands"] + args)
    assert result.returncode == 0, result.stderr
    return [shlex.split(line) for line in result.stdout.splitlines()]


def test_print_commands_one_line_per_run_with_the_configuration():
    args = ["--flagfile=configs/table2_ablation.cfg", "--num_actors=3",
            "--frames=5000000", "--seeds=1,2", "--logdir=/tmp/never"]
    commands = _commands(args)
    runs = ablation.grid(ablation.CORRECTIONS, BOTH, [1, 2])
    assert len(commands) == len(runs)
    for run, cmd in zip(runs, commands):
        assert cmd[:3] == ["python", "-m", "impala_tf.cli.experiment"]
        for flag in ("--level_name=rooms_watermaze", "--agent=deep",
                     "--use_lstm", "--unroll_length=100", "--batch_size=32",
                     "--num_actors=3", "--clip_rho_threshold=1.0",
                     f"--logdir={ablation.run_logdir('/tmp/never', run)}",
                     f"--seed={run.seed}",
                     "--total_environment_frames=5000000",
                     f"--off_policy_correction={run.correction}"):
            assert cmd.count(flag) == 1, (flag, cmd)
        # The file's own correction and frame target are replaced, once.
        assert sum(a.startswith("--off_policy_correction") for a in cmd) == 1
        assert sum(a.startswith("--total_environment_frames")
                   for a in cmd) == 1
        assert (f"--replay_proportion={0.5 if run.replay else 0}"
                in cmd), cmd
        assert any(a.startswith("--replay_capacity=")
                   for a in cmd) == run.replay
    assert not os.path.exists("/tmp/never")
    # --cell=K is line K+1 of the whole list.
    assert _commands(args + ["--cell=5"]) == [commands[5]]


def test_print_commands_replay_settings():
    commands = _commands(["--level_name=atari/pong", "--frames=100",
                          "--corrections=none", "--replay_proportion=0.25",
                          "--replay_capacity=64"])
    off, on = commands
    assert off[-2:] == ["--off_policy_correction=none",
                        "--replay_proportion=0"]
    assert on[-3:] == ["--off_policy_correction=none",
                       "--replay_proportion=0.25", "--replay_capacity=64"]


def write_run(logdir, returns, rhos=None):
    """A run's progress.jsonl (`testing.write_progress`), 1000 frames per
    record; `rhos`: (fresh, replayed) mean clipped rho in every record."""
    testing.write_progress(
        logdir, returns, 1000,
        extra=dict(zip(ablation.RHO_KEYS, rhos)) if rhos else None)


# Final returns of the synthetic grid: (correction, replay) -> per seed 1, 2
# (None: that seed did not run). epsilon with replay and none are not run.
FINAL = {("vtrace", False): (10.0, 14.0), ("vtrace", True): (20.0, 21.0),
         ("1step_is", False): (5.0, None), ("1step_is", True): (-3.0, -5.0),
         ("epsilon", False): (1.0, 2.0)}


@pytest.fixture(scope="module")
def grid_dir(tmp_path_factory):
    base = tmp_path_factory.mktemp("ablation")
    for (correction, replay), finals in FINAL.items():
        for seed, final in zip((1, 2), finals):
            if final is None:
                continue
            run = ablation.Run(0, correction, replay, seed)
            write_run(ablation.run_logdir(str(base), run),
                      [None, final - 7, final],
                      rhos=(1.0, 0.6 + 0.1 * seed) if replay else (1.0, None))
    return base


def _results(base):
    runs = ablation.grid(ablation.CORRECTIONS, [False, True], [1, 2])
    return ablation.read_results(str(base), runs)


def test_read_results(grid_dir):
    results = _results(grid_dir)
    assert len(results) == 16
    by_cell = {(r.correction, r.replay, r.seed): v for r, v in
               results.items()}
    assert by_cell[("vtrace", True, 2)] == {
        "frames": 3000, "final_return": 21.0,
        "mean_clipped_rho_fresh": 1.0,
        "mean_clipped_rho_replayed": pytest.approx(0.8)}
    assert by_cell[("vtrace", False, 1)]["mean_clipped_rho_replayed"] is None
    assert by_cell[("1step_is", False, 2)] is None
    assert by_cell[("none", True, 1)] is None
    assert ablation.cell_returns(results, "vtrace", False) == [10.0, 14.0]
    assert ablation.cell_returns(results, "epsilon", True) == []


def test_table_has_table_2s_shape_and_the_papers_numbers(grid_dir):
    results = _results(grid_dir)
    text = ablation.format_table(results, "dmlab/explore_goal_locations_small",
                                 3000, [1, 2])
    lines = text.splitlines()
    assert "3,000 frames per run" in lines[0] and "seeds 1, 2" in lines[0]
    assert "mean ± std over seeds" in lines[0]
    header = lines[2].split()
    assert header == ["correction", "without", "replay", "with", "replay",
                      "explore_goal_locations_small"]
    rows = {line[:14].strip(): line[14:].split("  ") for line in lines[3:]}
    assert list(rows) == ["V-trace", "1-step IS", "ε-correction",
                          "No correction"]
    cells = {k: [c.strip() for c in v if c.strip()] for k, v in rows.items()}
    # Means, the sample std over the seeds, the paper's without → with.
    assert cells["V-trace"] == ["12.0 ± 2.8", "20.5 ± 0.7", "229.2 → 250.8"]
    assert cells["1-step IS"] == ["5.0 (1/2 seeds)", "-4.0 ± 1.4",
                                  "215.8 → 204.8"]
    assert cells["ε-correction"] == ["1.5 ± 0.7", "–", "107.7 → 101.5"]
    assert cells["No correction"] == ["–", "–", "94.9 → 85.0"]


def test_table_for_another_level_shows_all_five_tasks(grid_dir):
    text = ablation.format_table(_results(grid_dir), "atari/pong", 3000,
                                 [1, 2])
    assert "(paper Table 2) on atari/pong: final mean return" in text
    header = text.splitlines()[2]
    for level in dmlab30.PAPER_TABLE_2_LEVELS:
        assert level in header
    vtrace = text.splitlines()[3]
    for cell in ("46.8 → 47.1", "32.9 → 35.8", "31.3 → 34.5",
                 "229.2 → 250.8", "43.8 → 46.9"):
        assert cell in vtrace


def test_csv_has_a_row_per_run(grid_dir, tmp_path):
    results = _results(grid_dir)
    ablation.write_csv(results, str(grid_dir), str(tmp_path / "a.csv"))
    with open(tmp_path / "a.csv") as f:
        rows = list(csv.DictReader(f))
    assert tuple(rows[0]) == ablation.CSV_COLUMNS
    assert len(rows) == 16
    assert [r["cell"] for r in rows] == [str(i) for i in range(16)]
    row = rows[3]  # vtrace, replay on, seed 2.
    assert (row["correction"], row["replay"], row["seed"]) == (
        "vtrace", "1", "2")
    assert float(row["final_return"]) == 21.0 and row["frames"] == "3000"
    assert float(row["mean_clipped_rho_replayed"]) == pytest.approx(0.8)
    assert rows[0]["mean_clipped_rho_replayed"] == ""
    assert row["logdir"].endswith(os.path.join("vtrace_replay1", "seed_2"))
    missing = rows[5]  # 1step_is, replay off, seed 2: not run.
    assert (missing["correction"], missing["seed"]) == ("1step_is", "2")
    assert missing["final_return"] == missing["frames"] == ""


def test_plot_bars_without_and_with_replay_and_a_dot_per_seed(grid_dir,
                                                             tmp_path):
    fig = ablation.plot(_results(grid_dir), list(ablation.CORRECTIONS),
                        str(tmp_path / "a.png"), "title here")
    (ax,) = fig.axes
    without, with_replay = ax.containers
    assert without.get_label() == "without replay"
    assert with_replay.get_label() == "with replay"
    assert [p.get_height() for p in without] == pytest.approx([12, 5, 1.5])
    assert [p.get_height() for p in with_replay] == pytest.approx([20.5, -4])
    # Without-replay bars left of their tick, with-replay bars right.
    assert [round(p.get_x() + p.get_width() / 2, 2) for p in without] == [
        -0.19, 0.81, 1.81]
    dots = [line for line in ax.get_lines() if line.get_marker() == "o"]
    assert sorted(float(y) for d in dots for y in d.get_ydata()) == sorted(
        [10, 14, 5, 1, 2, 20, 21, -3, -5])
    assert [t.get_text() for t in ax.get_xticklabels()] == [
        "V-trace", "1-step IS", "ε-correction", "No correction"]
    assert ax.get_title() == "title here"
    with open(tmp_path / "a.png", "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"


def test_table_only_command_line(grid_dir, tmp_path):
    out = tmp_path / "t2"
    result = _ablation(["--table_only", f"--logdir={grid_dir}",
                        "--seeds=1,2", f"--out={out}",
                        "--level_name=dmlab/rooms_watermaze"])
    assert result.returncode == 0, result.stderr
    assert "20.5 ± 0.7" in result.stdout and "46.8 → 47.1" in result.stdout
    assert os.path.getsize(f"{out}.png") > 0
    with open(f"{out}.csv") as f:
        assert len(list(csv.reader(f))) == 1 + 16


@pytest.mark.parametrize("args, fragment", [
    (["--corrections=vtrace,retrace"], "unknown correction 'retrace' in "
     "--corrections; choose from vtrace, 1step_is, epsilon, none"),
    (["--corrections=vtrace,vtrace"], "--corrections lists a value twice"),
    (["--corrections="], "--corrections is empty"),
    (["--frames=0"], "flag --frames=0"),
    (["--frames=-5"], "flag --frames=-5"),
    (["--seeds=one"], "--seeds must be a comma-separated list of ints"),
    (["--seeds=1,1"], "--seeds lists a value twice"),
    (["--cell=8", "--seeds=1", "--corrections=vtrace"], "--cell=8 but the "
     "grid has"),
    (["--cell=-1"], "flag --cell=-1"),
    (["--replay=sometimes"], "flag --replay=sometimes"),
    (["--no_such_flag=1"], "no_such_flag"),
    (["--nothing"], "nothing"),
])
def test_bad_input_is_one_sentence_and_exit_2(args, fragment):
    result = _ablation(["--frames=100", "--print_commands"]
                       + args)
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert result.stderr.startswith("error: "), result.stderr
    assert fragment in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr


def test_missing_frames_and_runs_are_refused(tmp_path):
    result = _ablation([])
    assert result.returncode == 2
    assert result.stderr == ("error: --frames is required: the frame budget "
                             "of each run\n")
    result = _ablation(["--table_only", f"--logdir={tmp_path}"])
    assert result.returncode == 2
    assert "no run of this grid has a progress.jsonl" in result.stderr


def test_runs_at_stop_at_return_are_skipped_and_the_others_trained(
        tmp_path):
    """--stop_at_return: a run whose last 100 games average at least the
    target is done however far --frames is; below it, the run is trained
    (here the trainer refuses the level at once, so nothing trains)."""
    for replay in (False, True):
        write_run(ablation.run_logdir(
            str(tmp_path), ablation.Run(0, "vtrace", replay, 1)),
            [-10.0] * 99 + [5.0])
    args = [f"--logdir={tmp_path}", "--frames=10000000", "--seeds=1",
            "--corrections=vtrace", "--level_name=atari/no_such_game",
            f"--out={tmp_path / 't2'}"]
    result = _ablation(args + ["--stop_at_return=5"])
    assert result.returncode == 0, result.stderr
    for index, replay in enumerate(("off", "on")):
        assert (f"[ablation] cell {index} (vtrace, replay {replay}, seed 1): "
                f"done in {tmp_path}/vtrace_replay{index}/seed_1 (at 100,000 "
                "of 10,000,000 frames)") in result.stdout
    assert "wrote" in result.stdout
    result = _ablation(args + ["--stop_at_return=5.5"])
    assert result.returncode == 2, result.stdout
    assert ("error: cell 0 (vtrace, replay off, seed 1)'s training exited "
            "with status 2") in result.stderr
    assert "unknown Atari game 'no_such_game'" in result.stderr
    # Two at a time: both start, both fail, each one's output in its file.
    result = _ablation(args + ["--stop_at_return=5.5", "--parallel=2"])
    assert result.returncode == 2, result.stdout
    for index, replay in enumerate(("off", "on")):
        log = tmp_path / f"vtrace_replay{index}" / "seed_1.log"
        assert (f"error: cell {index} (vtrace, replay {replay}, seed 1)'s "
                f"training exited with status 2 (its output: {log})"
                ) in result.stderr
        assert "unknown Atari game 'no_such_game'" in log.read_text()


def test_papers_table_2_matches_what_its_text_says():
    """Section 5.2.2: without replay V-trace is best on 3 of 5 tasks, with
    replay on 4 of 5, and it is the only correction that gains from replay
    on every task; explore_goal_locations_small goes 229.2 -> 250.8."""
    paper = dmlab30.PAPER_TABLE_2
    assert set(paper) == {(c, r) for c in ablation.CORRECTIONS
                          for r in (False, True)}

    def best_on(replay):
        return sum(max(ablation.CORRECTIONS,
                       key=lambda c: paper[(c, replay)][level]) == "vtrace"
                   for level in dmlab30.PAPER_TABLE_2_LEVELS)

    assert best_on(False) == 3 and best_on(True) == 4
    gains = {c: all(paper[(c, True)][l] > paper[(c, False)][l]
                    for l in dmlab30.PAPER_TABLE_2_LEVELS)
             for c in ablation.CORRECTIONS}
    assert gains == {"vtrace": True, "1step_is": False, "epsilon": False,
                     "none": False}
    goal = "explore_goal_locations_small"
    assert (paper[("vtrace", False)][goal],
            paper[("vtrace", True)][goal]) == (229.2, 250.8)


@pytest.mark.slow
@procs.requires_netns
def test_trains_the_grid_on_the_toy_level_then_resumes_and_skips(tmp_path):
    """A real run: the toy level for 400 frames per run, V-trace without
    and with replay; the same command again finds every run done and only
    redraws."""
    args = ["--level_name=" + testing.TOY_LEVEL, "--use_lstm=false",
            "--batch_size=4", "--unroll_length=10", "--num_actors=1",
            "--log_interval_s=0.5", "--learning_rate=0.002",
            f"--logdir={tmp_path}", "--frames=400", "--seeds=3",
            "--corrections=vtrace", "--replay_capacity=32"]
    result = testing.run_impala(args, timeout=900,
                                module="impala_tf.cli.ablation")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr
    runs = ablation.grid(["vtrace"], BOTH, [3])
    results = ablation.read_results(str(tmp_path), runs)
    for run in runs:
        line = [l for l in result.stdout.splitlines() if l.startswith(
            f"[ablation] cell {run.index} ({run.correction}, replay "
            f"{'on' if run.replay else 'off'}, seed 3): ")][0].split()
        assert f"--off_policy_correction={run.correction}" in line
        assert "--total_environment_frames=400" in line
        assert results[run]["frames"] >= 400
        assert os.path.exists(os.path.join(
            ablation.run_logdir(str(tmp_path), run), "checkpoints"))
        if run.replay:
            rho = results[run]["mean_clipped_rho_replayed"]
            assert rho is not None and 0 < rho <= 1
    assert "V-trace" in result.stdout and "wrote" in result.stdout
    with open(tmp_path / "ablation.csv") as f:
        rows = list(csv.DictReader(f))
    assert [(r["correction"], r["replay"]) for r in rows] == [
        (r.correction, str(int(r.replay))) for r in runs]
    assert all(int(r["frames"]) >= 400 for r in rows)

    again = testing.run_impala(args, timeout=300,
                               module="impala_tf.cli.ablation")
    assert again.returncode == 0, again.stderr
    for run in runs:
        assert (f"cell {run.index} ({run.correction}, replay "
                f"{'on' if run.replay else 'off'}, seed 3): done in "
                f"{ablation.run_logdir(str(tmp_path), run)} (at "
                f"{results[run]['frames']:,} of 400 frames)") in again.stdout
    assert ablation.read_results(str(tmp_path), runs) == results
