r"""End-to-end training frames/s against this machine's ceiling.

    python -m benchmarks.throughput [--configs=2:1:0,2:64:1:grpc,2:64:1,...]
        [--warmup_s=20] [--measure_s=40] [--ceiling_s=10] [--quick]
        [--sources=DIR,DIR] [--out=benchmarks/results/throughput.json]
        [-- extra experiment flags]

For each config "ACTORS:ENVS_PER_ACTOR:VECTOR_ENV[:TRANSPORT]" (TRANSPORT:
"shm", the default, or "grpc": `--local_transport=shared_memory|grpc`) it

  1. measures the ceiling: as many processes as the machine has CPUs step
     raw ALE Pong (ALE's frame skip 4, random actions, no preprocessing)
     for --ceiling_s seconds; frames/s summed;
  2. trains Pong with `python -m impala_tf.cli.experiment` (shallow agent, batch
     32, unroll 20, the paper's hyperparameters: the defaults) with that many
     actor processes and environments per actor (each actor runs its
     environments in lock-step with one batched inference call per step),
     the Atari environments as one `AtariBatch` or not;
  3. once training has started (first progress record) and --warmup_s more
     seconds have passed, measures training frames/s from progress.jsonl
     over --measure_s seconds, and the CPU used by the learner process and
     by the actor processes;
  4. stops the run with SIGTERM (it checkpoints and stops its actors), then
     kills what is left of its process group.

With --sources (checkouts of impala_tf, e.g. a `git worktree` of an older
commit), each config is trained once from each checkout in turn, so a
change is compared with its predecessor side by side in one run, under the
same ceilings; the "source" column names each checkout's commit.

The ratio column divides by the mean of the ceilings measured just before
and just after that config, so load from other users of the machine shows
in both; "CPU others" is the CPU the machine spent outside the run while it
was measured (should be ~0 for numbers worth quoting). "/ceiling per
CPU-s" compares frames per CPU-second (training: all its processes; the
ceiling: its emulators), which other load does not lower: on a quiet
machine where training keeps every CPU busy it equals the ratio. MonoBeast's 4,300
frames/s (TorchBeast, PyTorch, 2 actors, batch 32, unroll 20 on a 2-core
machine: the figure of benchmarks/README.md) is the other reference.

Everything runs in a private network namespace (`unshare -n`, loopback
only; re-executed under it if needed): TF's gRPC servers listen on every
interface. The default run takes about 9 minutes; --quick about 3.
"""

import argparse
import os
import subprocess
import sys
import tempfile
import time

from benchmarks import _common
from impala_tf.runtime import processes
from impala_tf.runtime import progress
from impala_tf import testing

MONOBEAST_FPS = 4300.0  # benchmarks/README.md, "Peers".
DEFAULT_CONFIGS = "2:1:0,2:64:0,2:32:1,2:64:1:grpc,2:64:1,2:128:1"
TRANSPORTS = {"shm": "shared_memory", "grpc": "grpc"}
QUICK_CONFIGS = "2:1:0,2:64:1"


def train(config, args, extra, workdir, index=0, source=_common.REPO):
    """Runs one training config from checkout `source`; returns frames/s
    and CPU details."""
    actors, envs, vector, transport = config
    name = f"{index}_{actors}x{envs}{'v' if vector else ''}_{transport}"
    logdir = os.path.join(workdir, name)  # Fresh: never resume a run.
    cmd = [sys.executable, "-m", "impala_tf.cli.experiment",
           "--level_name=atari/pong", f"--logdir={logdir}",
           f"--num_actors={actors}", f"--envs_per_actor={envs}",
           f"--vector_env={'true' if vector else 'false'}",
           f"--local_transport={TRANSPORTS[transport]}",
           "--log_interval_s=2", "--checkpoint_interval_s=1000000"] + extra
    if transport == "grpc":
        # TF's server (every interface, no authentication): consented to
        # inside the benchmark's private network namespace.
        cmd.append("--listen_on_all_interfaces")
    with open(logdir + ".log", "w") as log:
        proc = subprocess.Popen(cmd, cwd=source, stdout=log,
                                stderr=subprocess.STDOUT,
                                start_new_session=True)
    try:
        deadline = time.monotonic() + args.startup_timeout_s
        while not progress.read_records(logdir):  # Start-up, first batch.
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"config {name} did not start training; "
                                   f"see {logdir}.log")
            time.sleep(0.5)
        time.sleep(args.warmup_s)  # Queue and prefetch in steady state.
        if proc.poll() is not None:
            raise RuntimeError(f"config {name} exited; see {logdir}.log")
        first = progress.read_records(logdir)[-1]
        cpu = _common.ProcessCpu(proc.pid)
        cpu.start()
        busy0 = testing.machine_jiffies()
        time.sleep(args.measure_s)
        busy1 = testing.machine_jiffies()
        used = cpu.stop()
        machine_busy = ((busy1[0] - busy0[0]) / max(busy1[1] - busy0[1], 1)
                        * (os.cpu_count() or 1))
        records = [r for r in progress.read_records(logdir)
                   if r["wall_time"] > first["wall_time"]]
        if not records:
            raise RuntimeError(f"config {name}: no progress while measuring")
        last = records[-1]
        dt = last["wall_time"] - first["wall_time"]
        frames = last["env_frames"] - first["env_frames"]
        lags = [r["policy_lag_mean"] for r in records
                if r.get("policy_lag_mean") is not None]
        return {
            "fps": frames / dt, "measured_s": dt,
            "learner_steps_per_s": (last["learner_steps"]
                                    - first["learner_steps"]) / dt,
            "cpu_learner": used["root"], "cpu_actors": sum(used["children"]),
            "cpu_total": used["total"],
            "cpu_others": max(0.0, machine_busy - used["total"]),
            "policy_lag": sum(lags) / len(lags) if lags else None}
    finally:
        processes.stop(proc, timeout_s=90, group=True)


def _parse_config(text, parser):
    """"A:E:V[:T]" -> (actors, envs per actor, vector env 0/1, transport)."""
    parts = text.split(":")
    try:
        if len(parts) not in (3, 4) or (len(parts) == 4
                                        and parts[3] not in TRANSPORTS):
            raise ValueError
        return (int(parts[0]), int(parts[1]), int(parts[2]),
                parts[3] if len(parts) == 4 else "shm")
    except ValueError:
        parser.error(f"config '{text}' is not ACTORS:ENVS_PER_ACTOR:"
                     "VECTOR_ENV[:shm|grpc]")


def main(argv):
    extra = []
    if "--" in argv:
        i = argv.index("--")
        argv, extra = argv[:i], argv[i + 1:]
    parser = argparse.ArgumentParser(prog="python -m benchmarks.throughput",
                                     description=__doc__)
    parser.add_argument("--configs", default=None,
                        help="ACTORS:ENVS_PER_ACTOR:VECTOR_ENV(0/1)"
                        "[:shm|grpc],... "
                        f"(default {DEFAULT_CONFIGS})")
    parser.add_argument("--warmup_s", type=float, default=20.0,
                        help="after the first progress record")
    parser.add_argument("--startup_timeout_s", type=float, default=240.0)
    parser.add_argument("--measure_s", type=float, default=40.0)
    parser.add_argument("--ceiling_s", type=float, default=10.0)
    parser.add_argument("--quick", action="store_true",
                        help=f"configs {QUICK_CONFIGS}, 10s warm-up, 25s "
                        "measurements, 6s ceilings")
    parser.add_argument("--quiet_wait_s", type=float, default=0.0,
                        help="before each measurement, wait up to this long "
                        "for other processes to use < 0.3 CPUs")
    parser.add_argument("--sources", default=None,
                        help="checkouts to train from, each config once per "
                        "checkout in turn (default: this one)")
    parser.add_argument("--out", default="benchmarks/results/throughput.json")
    args = parser.parse_args(argv)
    sources = _common.parse_sources(parser, args.sources,
                                    "impala_tf/cli/experiment.py")
    if args.quick:
        args.warmup_s, args.measure_s, args.ceiling_s = 10.0, 25.0, 6.0
        args.configs = args.configs or QUICK_CONFIGS
    configs = [_parse_config(c, parser)
               for c in (args.configs or DEFAULT_CONFIGS).split(",")]
    num_emulators = os.cpu_count() or 1
    rows = []
    with tempfile.TemporaryDirectory(prefix="impala_throughput_") as work:
        quiet = lambda: _common.wait_until_quiet(args.quiet_wait_s) if (
            args.quiet_wait_s > 0) else None
        ceiling = lambda: _common.raw_emulator_ceiling(
            num_emulators, args.ceiling_s, per_cpu_second=True)
        quiet()
        before = ceiling()
        runs = [(c, d) for c in configs for d in sources]
        for index, (config, source) in enumerate(runs):
            actors, envs, vector, transport = config
            quiet()
            print(f"[throughput] ceiling {before[0]:,.0f} frames/s; training "
                  f"{actors} actor(s) x {envs} env(s), vector_env="
                  f"{bool(vector)}, {transport}, from {source} ...",
                  flush=True)
            row = {"source": _common.commit_of(source), "actors": actors,
                   "envs_per_actor": envs,
                   "vector_env": bool(vector), "transport": transport,
                   "ceiling_before": before[0]}
            row.update(train(config, args, extra, work, index, source))
            quiet()
            after = ceiling()
            row["ceiling_after"] = after[0]
            row["ceiling_fps"] = (before[0] + after[0]) / 2
            row["ceiling_frames_per_cpu_s"] = (before[1] + after[1]) / 2
            before = after
            row["ratio_to_ceiling"] = row["fps"] / row["ceiling_fps"]
            row["frames_per_cpu_s"] = row["fps"] / max(row["cpu_total"],
                                                       1e-9)
            row["cpu_ratio_to_ceiling"] = (row["frames_per_cpu_s"]
                                           / row["ceiling_frames_per_cpu_s"])
            row["ratio_to_monobeast"] = row["fps"] / MONOBEAST_FPS
            rows.append(row)
            print(f"[throughput]   {row['fps']:,.0f} frames/s "
                  f"({row['ratio_to_ceiling']:.2f}x the ceiling)", flush=True)
    columns = [("source", "source", "{}"), ("actors", "actors", "{}"),
               ("envs_per_actor", "envs/actor", "{}"),
               ("vector_env", "vector env", "{}"),
               ("transport", "transport", "{}"),
               ("fps", "frames/s", "{:,.0f}"),
               ("ceiling_fps", "ceiling", "{:,.0f}"),
               ("ratio_to_ceiling", "/ceiling", "{:.2f}"),
               ("ratio_to_monobeast", "/MonoBeast", "{:.2f}"),
               ("cpu_ratio_to_ceiling", "/ceiling per CPU-s", "{:.2f}"),
               ("cpu_learner", "CPU learner", "{:.2f}"),
               ("cpu_actors", "CPU actors", "{:.2f}"),
               ("cpu_others", "CPU others", "{:.2f}"),
               ("policy_lag", "lag", "{:.1f}")]
    table = _common.format_table(rows, columns)
    print(table)
    report = {"benchmark": "throughput", "machine": _common.machine(),
              "ceiling": f"{num_emulators} processes x raw ALE Pong, frame "
                         "skip 4, random actions",
              "monobeast_fps": MONOBEAST_FPS, "warmup_s": args.warmup_s,
              "measure_s": args.measure_s, "ceiling_s": args.ceiling_s,
              "extra_flags": extra, "results": rows,
              "table": table.splitlines()}
    print(f"[throughput] written to {_common.write_json(args.out, report)}")
    return 0


if __name__ == "__main__":
    _common.run_main("benchmarks.throughput", main)
