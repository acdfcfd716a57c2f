r"""Frames/s against actor processes and learners, through the distributed path.

    python -m benchmarks.scaling [--level_name=atari/pong] [--measure_s=40]
        [--configs=1x1,1x2,1x4,2x2,2x4] [--out=benchmarks/results/scaling.json]
        [-- extra impala_tf.cli.experiment flags]

Each config "LxA" runs `python -m impala_tf.cli.launch --num_learners=L
--num_actor_processes=A` (learners and actors are separate processes talking
TF gRPC, as on a cluster), waits for the first progress record (start-up and
tracing excluded), measures frames/s from learner 0's progress.jsonl for
--measure_s seconds, then stops it with SIGTERM. It prints a table with, for
each step, the speed-up and the efficiency of that step (speed-up divided by
the growth in processes: 1 actor -> 2 actors ideally doubles), the cores
its processes used (CPU seconds per second, all of the config's processes),
frames per core-second, and how busy the machine's CPUs were (all
processes, not only ours: on a shared machine other work takes its share,
and frames per core-second is the figure that survives it).

Everything runs inside a private network namespace (`unshare -n`, loopback
only): TF's gRPC servers listen on every interface.
"""

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time

from benchmarks import _common
from impala_tf.runtime import processes
from impala_tf.runtime import progress
from impala_tf import testing

REPO = testing.REPO


def run_config(learners, actors, args, extra, workdir):
    """Runs one config; returns a dict with fps and details."""
    logdir = os.path.join(workdir, f"{learners}x{actors}")
    # The launched learners serve TF's gRPC server (every interface, no
    # authentication): consented to here, inside the benchmark's private
    # network namespace.
    cmd = [sys.executable, "-m", "impala_tf.cli.launch",
           "--listen_on_all_interfaces",
           f"--num_learners={learners}", f"--num_actor_processes={actors}",
           f"--level_name={args.level_name}", f"--logdir={logdir}",
           "--total_environment_frames=100000000000",
           f"--log_interval_s={args.log_interval_s}",
           "--checkpoint_interval_s=1000000"] + extra
    with open(logdir + ".log", "w") as log:
        proc = subprocess.Popen(cmd, cwd=REPO, stdout=log,
                                stderr=subprocess.STDOUT,
                                start_new_session=True)
    result = {"learners": learners, "actors": actors}
    try:
        deadline = time.monotonic() + args.startup_timeout_s
        while not progress.read_records(logdir):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{learners}x{actors} did not start; see "
                                   f"{logdir}.log")
            time.sleep(0.5)
        start = progress.read_records(logdir)[-1]
        cpu0, own0, t0 = (testing.machine_jiffies(),
                          _common.tree_cpu_s(proc.pid), time.time())
        time.sleep(args.measure_s)
        cpu1, own1, t1 = (testing.machine_jiffies(),
                          _common.tree_cpu_s(proc.pid), time.time())
        records = [r for r in progress.read_records(logdir)
                   if r["wall_time"] >= start["wall_time"]]
        end = records[-1]
        dt = end["wall_time"] - start["wall_time"]
        result.update(
            fps=(end["env_frames"] - start["env_frames"]) / dt if dt else 0,
            learner_steps_per_s=(end["learner_steps"]
                                 - start["learner_steps"]) / dt if dt else 0,
            measured_s=dt,
            cpu_busy=(cpu1[0] - cpu0[0]) / max(cpu1[1] - cpu0[1], 1e-9),
            cores_used=(own1 - own0) / (t1 - t0),
            load_average_1min=os.getloadavg()[0],
            actors_connected=end.get("actors_connected"))
    finally:
        # The launcher's learners stop, their actors follow; then whatever
        # is left of its process group is killed.
        processes.stop(proc, timeout_s=120, group=True)
    return result


def efficiencies(results):
    """Adds 'speedup' (vs the first config), 'step' and 'step_efficiency'.

    A step compares L > 1 learners with 1 learner and the same actors
    (growth = L), and 1 learner with the previous 1-learner config (more
    actors: growth = the actor ratio).
    Efficiency = speed-up of the step / growth (100%: linear scaling).
    """
    base = results[0]["fps"] or 1e-9
    by_key = {(r["learners"], r["actors"]): r for r in results}
    last = {}
    for r in results:
        r["speedup"] = r["fps"] / base
        ref, growth = by_key.get((1, r["actors"])), r["learners"]
        if r["learners"] == 1 or ref is None:
            ref = last.get(r["learners"])
            growth = r["actors"] / ref["actors"] if ref else None
        r["step"] = f"{ref['learners']}x{ref['actors']}" if ref else None
        r["step_efficiency"] = (r["fps"] / ref["fps"] / growth
                                if ref and ref["fps"] else None)
        last[r["learners"]] = r
    return results


def table(results):
    lines = [f"{'learners':>8} {'actors':>6} {'frames/s':>9} {'steps/s':>7} "
             f"{'speed-up':>8} {'step':>9} {'efficiency':>10} "
             f"{'cores used':>10} {'frames/core-s':>13} {'CPU busy':>8}"]
    for r in results:
        eff = (f"{100 * r['step_efficiency']:.0f}%"
               if r.get("step_efficiency") is not None else "-")
        step = f"vs {r['step']}" if r.get("step") else "-"
        lines.append(
            f"{r['learners']:>8} {r['actors']:>6} {r['fps']:>9,.0f} "
            f"{r['learner_steps_per_s']:>7.2f} {r['speedup']:>7.2f}x "
            f"{step:>9} {eff:>10} {r['cores_used']:>10.2f} "
            f"{r['fps'] / max(r['cores_used'], 1e-9):>13,.0f} "
            f"{100 * r['cpu_busy']:>7.0f}%")
    return "\n".join(lines)


def main(argv):
    if "--" in argv:
        i = argv.index("--")
        argv, extra = argv[:i], argv[i + 1:]
    else:
        extra = []
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.scaling", description=__doc__)
    parser.add_argument("--level_name", default="atari/pong")
    parser.add_argument("--configs", default="1x1,1x2,1x4,2x2,2x4",
                        help="LEARNERSxACTORS,... in order")
    parser.add_argument("--measure_s", type=float, default=40.0)
    parser.add_argument("--log_interval_s", type=float, default=5.0)
    parser.add_argument("--startup_timeout_s", type=float, default=240.0)
    parser.add_argument("--out",
                        default="benchmarks/results/scaling.json")
    parser.add_argument("--table_only", action="store_true",
                        help="reprint the table of an earlier --out")
    args = parser.parse_args(argv)
    if args.table_only:
        with open(os.path.join(REPO, args.out)) as f:
            print(table(json.load(f)["results"]))
        return 0
    _common.ensure_private_network("benchmarks.scaling")
    configs = [tuple(int(x) for x in c.split("x"))
               for c in args.configs.split(",")]
    results = []
    with tempfile.TemporaryDirectory(prefix="impala_scaling_") as workdir:
        for learners, actors in configs:
            print(f"[scaling] {learners} learner(s), {actors} actor "
                  f"process(es): measuring {args.measure_s:.0f}s ...",
                  flush=True)
            results.append(run_config(learners, actors, args, extra,
                                      workdir))
            print(f"[scaling]   {results[-1]['fps']:,.0f} frames/s",
                  flush=True)
    efficiencies(results)
    text = table(results)
    print(text)
    report = {
        "level_name": args.level_name, "extra_flags": extra,
        "measure_s": args.measure_s, "cpus": os.cpu_count(),
        "machine": platform.processor() or platform.machine(),
        "time": time.strftime("%Y-%m-%dT%H:%M:%S"), "results": results,
        "table": text.splitlines()}
    out = os.path.join(REPO, args.out)
    os.makedirs(os.path.dirname(out), exist_ok=True)
    with open(out, "w") as f:
        json.dump(report, f, indent=2)
    print(f"[scaling] written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
