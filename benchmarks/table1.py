r"""The paper's Table 1 on this machine: four architectures, two tasks, one command.

    python -m benchmarks.table1 [--workers=CPUS] [--envs=32]
        [--warmup_s=30] [--measure_s=75] [--rounds=1]
        [--tasks=pong,slow_reset] [--modes=impala,a2c_sync_traj,...]
        [--workdir=DIR] [--out=benchmarks/results/table1]
        [--print_commands | --dry_run | --collect=DIR]

Every cell trains with the same trainer (`impala-tf train`, here run as
`python -m impala_tf.cli.experiment`, the same program), the shallow
agent without LSTM, unroll 20, batch --envs (32), frames = 4 x agent
steps, and --envs environments in all, split over --workers processes
(default: this machine's CPUs), under each `--architecture`:

  impala         --workers actors of envs/workers environments each
  a2c_sync_traj  the same actors, each waiting for the update on its unroll
  a2c_sync_step  one acting process, the environments in --workers processes
  a3c            --workers workers, each sending its unroll's gradient

on two tasks: pong (Atari Pong: a steady cost per step) and slow_reset
(`benchmarks.slow_reset_env`: episodes of 20 to 1,000 steps, restarts of
15-400 ms of CPU). A cell runs for --warmup_s after its first progress
record plus --measure_s, then is stopped (SIGTERM); its frames/s and where
its processes' time went come from the progress records of the measured
window (`summarize`: the waits of `impala_tf.runtime.baselines.waits`, as
shares). Cells run one after another, modes in a rotated order each round,
so slow drifts of a shared machine's load spread over all of them.

Writes <out>.json (machine, settings, every cell, the paper's numbers),
<out>.csv (one row per cell) and <out>.png (each mode's frames/s as a ratio
to IMPALA's on each task, beside the paper's), and prints the table.

Bigger machines: `--print_commands` prints one shell command per cell (a
`timeout` around the trainer), for a Slurm array or an indexed Kubernetes
Job (docs/TABLE1.md); then `--collect=DIR` (their --workdir) makes the
table from their run directories. `--dry_run` prints the plan and exits.
"""

import argparse
import csv
import os
import shlex
import signal
import subprocess
import sys
import tempfile
import time

from benchmarks import _common
from impala_tf import testing
from impala_tf.runtime import progress

TASKS = {"pong": "atari/pong",
         "slow_reset": "benchmarks.slow_reset_env:make_env"}
MODES = ("impala", "a2c_sync_traj", "a2c_sync_step", "a3c")
# The paper's Table 1, CPU-only rows (frames/s): mode -> (name, CPUs,
# task 1, task 2). The GPU rows are in docs/TABLE1.md.
PAPER = {
    "a3c": ("A3C, 32 workers", 64, 6.5e3, 9e3),
    "a2c_sync_step": ("Batched A2C (sync step)", 48, 9e3, 5e3),
    "a2c_sync_traj": ("Batched A2C (sync traj.)", 48, 16e3, 17.5e3),
    "impala": ("IMPALA, 48 actors", 48, 17e3, 20.5e3),
}
WAIT_FIELDS = ("actor_pull_s", "actor_act_s", "actor_send_s",
               "actor_gradient_s", "env_step_s", "env_straggler_s",
               "learner_wait_s", "learner_step_s")


def trainer_flags(task, mode, workers, envs, logdir):
    """The trainer flags of one cell."""
    return [f"--level_name={TASKS[task]}", f"--architecture={mode}",
            f"--num_actors={workers}", f"--envs_per_actor={envs // workers}",
            f"--batch_size={envs}", "--unroll_length=20", "--agent=shallow",
            "--use_lstm=false", "--num_action_repeats=4",
            "--total_environment_frames=1000000000000",
            "--log_interval_s=5", "--checkpoint_interval_s=1000000",
            f"--logdir={logdir}"]


def cells(args):
    """[(round, task, mode)] in running order: modes rotated each round."""
    out = []
    for r in range(args.rounds):
        for task in args.tasks:
            k = r % len(args.modes)
            for mode in args.modes[k:] + args.modes[:k]:
                out.append((r, task, mode))
    return out


def logdir_of(workdir, r, task, mode):
    return os.path.join(workdir, f"{task}__{mode}__r{r}")


def summarize(records, warmup_s):
    """Frames/s and time shares of one run's measured window: from the
    first record `warmup_s` after its first record to its last. None if
    the window is empty.

    Shares: learner_wait and learner_step (of the learner's wall time);
    actor_pull, actor_act, actor_send and actor_gradient (of the actor
    processes' time: sums over actors); straggler (of the environment
    processes' step time, a2c_sync_step)."""
    if not records:
        return None
    start = records[0]["wall_time"] + warmup_s
    window = [r for r in records if r["wall_time"] >= start]
    if len(window) < 2:
        return None
    a, b = window[0], window[-1]
    dt = b["wall_time"] - a["wall_time"]
    d = {k: b.get(k, 0.0) - a.get(k, 0.0) for k in WAIT_FIELDS}
    actors = d["actor_pull_s"] + d["actor_act_s"] + d["actor_send_s"]
    share = lambda x, total: x / total if total > 0 else None
    lags = [r["policy_lag_mean"] for r in window[1:]
            if r.get("policy_lag_mean") is not None]
    return {
        "fps": (b["env_frames"] - a["env_frames"]) / dt,
        "measured_s": dt,
        "learner_steps_per_s": (b["learner_steps"] - a["learner_steps"]) / dt,
        "learner_wait": share(d["learner_wait_s"], dt),
        "learner_step": share(d["learner_step_s"], dt),
        "actor_pull": share(d["actor_pull_s"], actors),
        "actor_act": share(d["actor_act_s"], actors),
        "actor_send": share(d["actor_send_s"], actors),
        "actor_gradient": share(d["actor_gradient_s"], actors),
        "straggler": share(d["env_straggler_s"], d["env_step_s"]),
        "policy_lag": sum(lags) / len(lags) if lags else None,
        "episode_return": b.get("episode_return_mean"),
    }


def _stop(proc):
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(90)
        except subprocess.TimeoutExpired:
            pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)  # Whatever is left.
    except ProcessLookupError:
        pass
    proc.wait()


def run_cell(flags, logdir, args):
    """Trains one cell until its window is measured; returns (summary,
    CPU use). Raises RuntimeError if it does not start or dies."""
    cmd = [sys.executable, "-m", "impala_tf.cli.experiment"] + flags
    os.makedirs(os.path.dirname(logdir) or ".", exist_ok=True)
    with open(logdir + ".log", "w") as log:
        proc = subprocess.Popen(cmd, cwd=_common.REPO, stdout=log,
                                stderr=subprocess.STDOUT,
                                start_new_session=True)
    try:
        deadline = time.monotonic() + args.startup_timeout_s
        while not progress.read_records(logdir):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{logdir} did not start training; see "
                                   f"{logdir}.log")
            time.sleep(1.0)
        time.sleep(args.warmup_s)
        cpu = _common.ProcessCpu(proc.pid)
        cpu.start()
        busy0 = testing.machine_jiffies()
        time.sleep(args.measure_s)
        busy1 = testing.machine_jiffies()
        used = cpu.stop()
        if proc.poll() is not None:
            raise RuntimeError(f"{logdir} exited; see {logdir}.log")
        machine = ((busy1[0] - busy0[0]) / max(busy1[1] - busy0[1], 1)
                   * (os.cpu_count() or 1))
        return used["total"], max(0.0, machine - used["total"])
    finally:
        _stop(proc)


def _shell_command(flags, args):
    seconds = int(args.startup_timeout_s + args.warmup_s + args.measure_s)
    return " ".join(["timeout", "--signal=TERM", str(seconds), "impala-tf",
                     "train"] + [shlex.quote(f) for f in flags])


def _rows(args, plan, measure):
    """One row per cell: `measure(flags, logdir)` -> (cpu, cpu_others) or
    None (collect: nothing measured here)."""
    rows = []
    for r, task, mode in plan:
        logdir = logdir_of(args.workdir, r, task, mode)
        flags = trainer_flags(task, mode, args.workers, args.envs, logdir)
        print(f"[table1] {task} {mode} (round {r + 1} of {args.rounds}) ...",
              flush=True)
        row = {"round": r, "task": task, "mode": mode,
               "workers": args.workers, "envs": args.envs}
        cpu = measure(flags, logdir)
        if cpu is not None:
            row["cpu_run"], row["cpu_others"] = cpu
        summary = summarize(progress.read_records(logdir), args.warmup_s)
        if summary is None:
            print(f"[table1]   no measured window in {logdir}", flush=True)
            continue
        row.update(summary)
        rows.append(row)
        print(f"[table1]   {row['fps']:,.0f} frames/s", flush=True)
    return rows


def _mean(values):
    values = [v for v in values if v is not None]
    return sum(values) / len(values) if values else None


def _fps(row):
    return row["fps"]


def _fps_per_cpu(row):
    """Frames per CPU-second of the run, None where its CPU was not
    measured."""
    return row["fps"] / row["cpu_run"] if row.get("cpu_run") else None


def _round_ratios(rows, task, mode, value):
    """(min, max) over the rounds of value(row) / value(IMPALA's row of the
    same round and task), over rounds where both were measured; None if
    none was."""
    def by_round(m):
        return {r.get("round", 0): value(r) for r in rows
                if r["task"] == task and r["mode"] == m
                and value(r) is not None}
    mine, base = by_round(mode), by_round("impala")
    ratios = [mine[k] / base[k] for k in mine if base.get(k)]
    return (min(ratios), max(ratios)) if ratios else None


def combine(rows, tasks, modes):
    """Mean frames/s per (task, mode) over rounds, ratios to IMPALA's; and
    where the CPU the run used was measured (`cpu_run`, cores), frames per
    CPU-second and its ratio: on a machine shared with other work a run's
    share of the CPUs grows with its number of busy processes, so this
    compares the architectures' cost where frames/s alone may not. With
    several rounds, `*_range{i}` is the (min, max) over rounds of the ratio
    to IMPALA's cell of the same round."""
    table, per_cpu = {}, {}
    for task in tasks:
        for mode in modes:
            cell = [r for r in rows
                    if r["task"] == task and r["mode"] == mode]
            table[(task, mode)] = _mean(_fps(r) for r in cell)
            per_cpu[(task, mode)] = _mean(_fps_per_cpu(r) for r in cell)
    out = []
    for mode in modes:
        name, cpus, p1, p2 = PAPER[mode]
        row = {"mode": mode, "paper_name": name, "paper_cpus": cpus,
               "paper_task1": p1, "paper_task2": p2,
               "paper_ratio1": p1 / PAPER["impala"][2],
               "paper_ratio2": p2 / PAPER["impala"][3]}
        for i, task in enumerate(tasks, 1):
            fps, base = table[(task, mode)], table.get((task, "impala"))
            row[f"here_task{i}"] = fps
            row[f"here_ratio{i}"] = (fps / base if fps and base else None)
            cpu, cpu_base = per_cpu[(task, mode)], per_cpu.get(
                (task, "impala"))
            row[f"here_per_cpu{i}"] = cpu
            row[f"here_per_cpu_ratio{i}"] = (cpu / cpu_base
                                             if cpu and cpu_base else None)
            row[f"here_ratio_range{i}"] = _round_ratios(rows, task, mode,
                                                        _fps)
            row[f"here_per_cpu_ratio_range{i}"] = _round_ratios(
                rows, task, mode, _fps_per_cpu)
        out.append(row)
    return out


def plot(summary, tasks, path):
    import matplotlib  # pylint: disable=import-outside-toplevel
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # pylint: disable=import-outside-toplevel
    fig, axes = plt.subplots(1, len(tasks), figsize=(5 * len(tasks), 4),
                             squeeze=False)
    for i, (ax, task) in enumerate(zip(axes[0], tasks), 1):
        names = [r["mode"] for r in summary]
        x = range(len(names))
        here = [r.get(f"here_ratio{i}") or 0.0 for r in summary]
        per_cpu = [r.get(f"here_per_cpu_ratio{i}") or 0.0 for r in summary]
        paper = [r[f"paper_ratio{i}"] for r in summary]
        ax.bar([k - 0.27 for k in x], paper, 0.27,
               label="paper (48-64 CPUs)")
        ax.bar(list(x), here, 0.27, label="here, frames/s")
        ax.bar([k + 0.27 for k in x], per_cpu, 0.27,
               label="here, frames per CPU-s")
        ax.set_xticks(list(x))
        ax.set_xticklabels(names, rotation=20)
        ax.axhline(1.0, color="grey", lw=0.5)
        ax.set_title(f"task {i}: {task}")
        ax.set_ylabel("frames/s / IMPALA's")
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def _parse(argv):
    p = argparse.ArgumentParser(prog="python -m benchmarks.table1",
                                description=__doc__.split("\n")[0])
    p.add_argument("--workers", type=int, default=os.cpu_count() or 1,
                   help="actor, worker or environment processes per cell "
                   "(default: this machine's CPUs)")
    p.add_argument("--envs", type=int, default=32,
                   help="environments in all, and the batch (a multiple "
                   "of --workers)")
    p.add_argument("--warmup_s", type=float, default=30.0,
                   help="seconds after a cell's first progress record "
                   "that are not measured")
    p.add_argument("--measure_s", type=float, default=75.0,
                   help="seconds measured per cell")
    p.add_argument("--startup_timeout_s", type=float, default=300.0,
                   help="give up on a cell with no progress record after "
                   "this long")
    p.add_argument("--rounds", type=int, default=1,
                   help="times every cell runs (modes rotated each round); "
                   "the table gives the mean and each ratio's range")
    p.add_argument("--tasks", default="pong,slow_reset",
                   help=f"comma-separated, of: {', '.join(TASKS)}")
    p.add_argument("--modes", default=",".join(MODES),
                   help=f"comma-separated, of: {', '.join(MODES)} "
                   "(impala is needed: ratios are to it)")
    p.add_argument("--workdir", default=None,
                   help="run directories (default: a temporary one; "
                   "table1_runs with --print_commands)")
    p.add_argument("--out", default="benchmarks/results/table1",
                   help="output prefix of .json, .csv and .png (relative "
                   "to the repository)")
    p.add_argument("--print_commands", action="store_true",
                   help="print one shell command per cell and exit")
    p.add_argument("--dry_run", action="store_true",
                   help="print the plan and exit")
    p.add_argument("--collect", default=None,
                   help="make the table from the run directories under "
                   "this --workdir instead of training")
    args = p.parse_args(argv)
    args.tasks = [t for t in args.tasks.split(",") if t]
    args.modes = [m for m in args.modes.split(",") if m]
    bad = ([t for t in args.tasks if t not in TASKS]
           + [m for m in args.modes if m not in MODES])
    if bad:
        p.error(f"unknown task or mode {bad[0]!r}; tasks: "
                f"{', '.join(TASKS)}; modes: {', '.join(MODES)}")
    if args.workers < 1 or args.envs % args.workers:
        p.error(f"--envs={args.envs} must be a multiple of --workers="
                f"{args.workers} (at least 1)")
    if "impala" not in args.modes:
        p.error("--modes needs impala: every ratio is to its frames/s")
    if args.collect:
        args.workdir = args.collect
    return args


def main(argv):
    args = _parse(argv)
    plan = cells(args)
    if args.print_commands or args.dry_run:
        args.workdir = args.workdir or "table1_runs"
        for r, task, mode in plan:
            flags = trainer_flags(task, mode, args.workers, args.envs,
                                  logdir_of(args.workdir, r, task, mode))
            print(_shell_command(flags, args))
        if args.dry_run:
            each = args.warmup_s + args.measure_s + 60
            print(f"# {len(plan)} cells, about {each * len(plan) / 60:.0f} "
                  "minutes one after another here (start-up about 60 s "
                  "each)")
        return 0
    if args.collect:
        rows = _rows(args, plan, lambda flags, logdir: None)
    else:
        with tempfile.TemporaryDirectory(prefix="impala_table1_") as tmp:
            args.workdir = args.workdir or tmp
            rows = _rows(args, plan,
                         lambda flags, logdir: run_cell(flags, logdir, args))
    return report(args, rows)


def report(args, rows):
    summary = combine(rows, args.tasks, args.modes)
    columns = [("paper_name", "paper row", "{}"),
               ("paper_cpus", "CPUs", "{}")]
    for i, task in enumerate(args.tasks, 1):
        columns += [(f"paper_task{i}", f"paper t{i}", "{:,.0f}"),
                    (f"paper_ratio{i}", "ratio", "{:.2f}"),
                    (f"here_task{i}", f"here t{i} ({task})", "{:,.0f}"),
                    (f"here_ratio{i}", "ratio", "{:.2f}"),
                    (f"here_per_cpu{i}", "per CPU-s", "{:,.0f}"),
                    (f"here_per_cpu_ratio{i}", "ratio", "{:.2f}")]
        if args.rounds > 1:
            columns += [(f"here_per_cpu_ratio_range{i}", "over rounds",
                         "{0[0]:.2f}-{0[1]:.2f}")]
    table = _common.format_table(
        [dict(r, mode=r["mode"]) for r in summary],
        [("mode", "mode", "{}")] + columns)
    print(table)
    report_ = {"benchmark": "table1", "machine": _common.machine(),
               "workers": args.workers, "envs": args.envs,
               "warmup_s": args.warmup_s, "measure_s": args.measure_s,
               "rounds": args.rounds, "tasks": {t: TASKS[t]
                                                for t in args.tasks},
               "cells": rows, "summary": summary, "paper": PAPER,
               "table": table.splitlines()}
    path = _common.write_json(args.out + ".json", report_)
    keys = sorted({k for r in rows for k in r})
    with open(os.path.join(_common.REPO, args.out + ".csv"), "w",
              newline="") as f:
        writer = csv.DictWriter(f, keys)
        writer.writeheader()
        writer.writerows(rows)
    if rows:
        plot(summary, args.tasks, os.path.join(_common.REPO,
                                               args.out + ".png"))
    print(f"[table1] written to {path} (.csv, .png beside it)")
    return 0 if rows else 1


if __name__ == "__main__":
    _common.run_main("benchmarks.table1", main)
