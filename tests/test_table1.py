"""benchmarks.table1 and benchmarks.slow_reset_env, without training."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from benchmarks import slow_reset_env
from benchmarks import table1
from impala_tf import testing
from impala_tf.envs import registry


def _args(argv=()):
    return table1._parse(list(argv))  # pylint: disable=protected-access


def test_cells_rotate_modes_each_round():
    args = _args(["--rounds=2", "--tasks=pong", "--workers=2"])
    plan = table1.cells(args)
    assert [m for r, _, m in plan if r == 0] == list(table1.MODES)
    assert [m for r, _, m in plan if r == 1] == (list(table1.MODES[1:])
                                                  + [table1.MODES[0]])


def test_every_mode_gets_the_same_environments_and_batch():
    for mode in table1.MODES:
        flags = table1.trainer_flags("slow_reset", mode, 4, 32, "/x")
        assert "--num_actors=4" in flags and "--envs_per_actor=8" in flags
        assert "--batch_size=32" in flags and "--agent=shallow" in flags
        assert f"--architecture={mode}" in flags


def _record(t, frames, steps, **waits):
    r = {"wall_time": t, "env_frames": frames, "learner_steps": steps,
         "policy_lag_mean": 0.5, "episode_return_mean": 1.0}
    r.update(waits)
    return r


def test_summarize_measures_only_the_window_after_the_warm_up():
    records = [
        _record(100.0, 0, 0),
        _record(105.0, 5000, 5),  # Warm-up: not measured.
        _record(112.0, 8000, 8, learner_wait_s=2.0, learner_step_s=3.0,
                actor_pull_s=1.0, actor_act_s=5.0, actor_send_s=2.0,
                env_step_s=1.0, env_straggler_s=0.1),
        _record(122.0, 28000, 28, learner_wait_s=6.0, learner_step_s=9.0,
                actor_pull_s=5.0, actor_act_s=17.0, actor_send_s=2.0,
                env_step_s=11.0, env_straggler_s=2.6),
    ]
    s = table1.summarize(records, warmup_s=10.0)
    assert s["fps"] == pytest.approx(2000.0)
    assert s["learner_steps_per_s"] == pytest.approx(2.0)
    assert s["learner_wait"] == pytest.approx(0.4)
    assert s["learner_step"] == pytest.approx(0.6)
    assert s["actor_pull"] == pytest.approx(0.25)  # 4 of 16 actor seconds.
    assert s["actor_act"] == pytest.approx(0.75)
    assert s["actor_send"] == pytest.approx(0.0)
    assert s["actor_gradient"] is None or s["actor_gradient"] == 0.0
    assert s["straggler"] == pytest.approx(0.25)
    assert table1.summarize(records[:2], warmup_s=10.0) is None
    assert table1.summarize([], warmup_s=1.0) is None


def test_ratios_are_to_impala_on_each_task():
    rows = [{"task": t, "mode": m, "fps": fps, "cpu_run": cpu}
            for t, m, fps, cpu in [
                ("pong", "impala", 1000.0, 2.0), ("pong", "a3c", 500.0, 1.0),
                ("pong", "a3c", 700.0, 1.0),
                ("slow_reset", "impala", 400.0, None),
                ("slow_reset", "a3c", 100.0, None)]]
    summary = table1.combine(rows, ["pong", "slow_reset"], ["impala", "a3c"])
    a3c = summary[1]
    assert a3c["here_task1"] == 600.0 and a3c["here_ratio1"] == 0.6
    assert a3c["here_ratio2"] == 0.25
    # Per CPU-second: 600 against IMPALA's 500; none where not measured.
    assert a3c["here_per_cpu1"] == 600.0
    assert a3c["here_per_cpu_ratio1"] == pytest.approx(1.2)
    assert a3c["here_per_cpu_ratio2"] is None
    assert a3c["paper_ratio1"] == pytest.approx(6.5 / 17)
    assert summary[0]["here_ratio1"] == 1.0


def test_ranges_are_over_each_rounds_own_ratio(tmp_path, capsys):
    rows = [{"round": k, "task": "pong", "mode": m, "fps": fps,
             "cpu_run": cpu}
            for k, m, fps, cpu in [
                (0, "impala", 1000.0, 2.0), (0, "a3c", 500.0, 1.0),
                (1, "impala", 400.0, 1.0), (1, "a3c", 600.0, 1.0),
                (2, "a3c", 900.0, 1.0)]]  # Round 2 has no IMPALA cell.
    impala, a3c = table1.combine(rows, ["pong"], ["impala", "a3c"])
    assert a3c["here_ratio_range1"] == (0.5, 1.5)
    assert a3c["here_per_cpu_ratio_range1"] == (1.0, 1.5)
    assert impala["here_per_cpu_ratio_range1"] == (1.0, 1.0)
    args = _args([f"--out={tmp_path / 't1'}", "--tasks=pong",
                  "--modes=impala,a3c", "--rounds=3", "--workers=2"])
    assert table1.report(args, rows) == 0
    table = capsys.readouterr().out
    assert "over rounds" in table and "1.00-1.50" in table


def test_report_writes_json_csv_and_plot(tmp_path):
    out = str(tmp_path / "t1")
    args = _args([f"--out={out}", "--tasks=pong", "--modes=impala,a3c",
                  "--workers=2"])
    rows = [{"round": 0, "task": "pong", "mode": m, "fps": f,
             "learner_wait": 0.1} for m, f in (("impala", 900.0),
                                               ("a3c", 300.0))]
    assert table1.report(args, rows) == 0
    with open(out + ".json") as f:
        saved = json.load(f)
    assert saved["machine"]["cpus"] == os.cpu_count()
    assert saved["summary"][1]["here_ratio1"] == pytest.approx(1 / 3)
    with open(out + ".csv") as f:
        assert f.readline().strip().split(",")[0] == "fps"
    assert os.path.getsize(out + ".png") > 1000


def _run(argv):
    return subprocess.run(
        [sys.executable, "-m", "benchmarks.table1"] + argv, cwd=testing.REPO,
        capture_output=True, text=True, timeout=120,
        env=dict(os.environ, IMPALA_BENCHMARK_ISOLATED="1"))


def test_print_commands_and_bad_input():
    result = _run(["--print_commands", "--workers=8", "--tasks=slow_reset",
                   "--workdir=/runs"])
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == len(table1.MODES)
    for line, mode in zip(lines, table1.MODES):
        assert line.startswith("timeout --signal=TERM 405 impala-tf train ")
        assert f"--architecture={mode}" in line
        assert f"--logdir=/runs/slow_reset__{mode}__r0" in line
        assert "--num_actors=8 --envs_per_actor=4" in line
    bad = _run(["--workers=3"])
    assert bad.returncode == 2
    assert "--envs=32 must be a multiple of --workers=3" in bad.stderr
    assert "Traceback" not in bad.stderr
    assert _run(["--modes=a3c"]).returncode == 2


def test_slow_reset_env_lengths_costs_and_rewards():
    rng = np.random.default_rng(0)
    lengths = np.array([slow_reset_env.episode_steps(rng)
                        for _ in range(20000)])
    assert lengths.min() >= 20 and lengths.max() <= 1000
    assert 120 <= np.median(lengths) <= 160  # Log-uniform: about 140.
    costs = np.array([slow_reset_env.reset_cost_s(rng)
                      for _ in range(20000)])
    assert 0.015 <= costs.min() and costs.max() <= 0.4
    assert np.median(costs) == pytest.approx(0.05, rel=0.05)
    level_set = registry.parse_level_name(
        "benchmarks.slow_reset_env:make_env")
    env = level_set.make(0, seed=3)
    start = slow_reset_env.time.thread_time()
    ts = env.reset()
    assert slow_reset_env.time.thread_time() - start >= 0.015  # CPU spent.
    assert ts.observation.shape == (84, 84, 4)
    assert ts.observation.dtype == np.uint8
    steps, total = 0, 0.0
    while not ts.last():
        # The band's column names the target: the best action earns 1.
        target = int(np.argmax(ts.observation[0, ::14, 0]))
        ts = env.step(target)
        total += ts.reward
        steps += 1
    assert 20 <= steps <= 1000 and total == steps
