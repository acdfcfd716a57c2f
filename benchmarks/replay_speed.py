r"""Replay's cost on the learner: CPU ms per batch the replay mixer hands on.

    python -m benchmarks.replay_speed [--sources=DIR,DIR] [--rounds=3]
        [--batches=300] [--batch_size=8] [--proportion=0.5] [--fill=1000]
        [--out=benchmarks/results/replay_speed.json]

With replay on (`--replay_proportion`), every learner step reads its batch
through `replay.ReplayBatchSource`: the fresh trajectories are copied into
the batch and stored (their frames compressed, `compress_frames`), and the
replayed ones are drawn and rebuilt (`decompress_frames`). That work runs
on the learner's thread between steps. This measures it on Pong-shaped
trajectories (unroll 20, frames uint8 [84, 84, 4] stacked as the Atari
wrapper stacks them, 6 actions), fresh ones coming as `tf.Tensor` batches
of B - k as from the actors, once the buffer holds --fill trajectories:
CPU and wall ms per batch over --batches batches, and CPU ms to compress
and to rebuild one trajectory's frames.

With --sources (checkouts of impala_tf, e.g. a `git worktree` of an older
commit), every round measures each checkout in turn, each in a fresh
process that imports that checkout's impala_tf, so a change is compared
with its predecessor side by side on the same machine. Prints a table and
writes JSON with the machine. Starts no server and trains nothing.
"""

import argparse
import json
import os
import subprocess
import sys
import time


def _worker(args):
    """In a fresh process whose impala_tf is the source's: one measurement,
    printed as a JSON line."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    # pylint: disable=import-outside-toplevel
    import numpy as np
    import tensorflow as tf
    import impala_tf
    from impala_tf import types
    from impala_tf.algorithm import replay

    stack, steps = 4, 21
    spec = types.trajectory_spec(
        6, {"frame": tf.TensorSpec([84, 84, stack], tf.uint8)}, steps - 1,
        ())
    rng = np.random.default_rng(0)

    def fresh_batch(n):
        batch = types.zero_trajectories(spec, n)
        # Each step's stack is the previous one shifted by a new plane.
        planes = rng.integers(0, 255, (n, steps + stack - 1, 84, 84),
                              dtype=np.uint8)
        frames = np.stack([np.moveaxis(planes[:, t:t + stack], 1, -1)
                           for t in range(steps)], axis=1)
        batch = batch._replace(env_outputs=batch.env_outputs._replace(
            observation={"frame": frames}))
        return tf.nest.map_structure(tf.convert_to_tensor, batch)

    class Source:
        def __init__(self, batches):
            self._batches, self._i = batches, 0

        def __next__(self):
            self._i += 1
            return self._batches[self._i % len(self._batches)]

        def close(self):
            pass

    k = replay.replayed_per_batch(args["proportion"], args["batch_size"])
    source = Source([fresh_batch(args["batch_size"] - k) for _ in range(8)])
    mixer = replay.ReplayBatchSource(source, spec, args["batch_size"],
                                     args["proportion"], capacity=100_000)
    while mixer.buffer.size < args["fill"]:
        next(mixer)
    cpu, wall = time.process_time(), time.perf_counter()
    for _ in range(args["batches"]):
        next(mixer)
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    one = fresh_batch(1).env_outputs.observation["frame"].numpy()[0]
    reps = 200
    t = time.process_time()
    for _ in range(reps):
        planes, starts = replay.compress_frames(one)
    compress = time.process_time() - t
    t = time.process_time()
    for _ in range(reps):
        replay.decompress_frames(planes, starts, stack)
    decompress = time.process_time() - t
    print(json.dumps({
        "impala_tf": os.path.dirname(os.path.dirname(impala_tf.__file__)),
        "cpu_ms_per_batch": 1000 * cpu / args["batches"],
        "wall_ms_per_batch": 1000 * wall / args["batches"],
        "compress_cpu_ms": 1000 * compress / reps,
        "decompress_cpu_ms": 1000 * decompress / reps,
        "replayed_per_batch": k}))


def _measure(source, args):
    """One measurement in a fresh process importing `source`'s impala_tf."""
    env = dict(os.environ, PYTHONPATH=source)
    result = subprocess.run(
        [sys.executable, os.path.abspath(__file__), "--worker",
         json.dumps(args)], cwd=source, env=env, text=True,
        capture_output=True, timeout=1800, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"the measurement from {source} failed:\n"
                           f"{result.stderr[-2000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def main(argv):
    # pylint: disable=import-outside-toplevel
    from benchmarks import _common
    p = argparse.ArgumentParser(prog="python -m benchmarks.replay_speed",
                                description=__doc__.split("\n")[0])
    p.add_argument("--sources", default=None,
                   help="comma-separated impala_tf checkouts (default: "
                   "this one)")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--batches", type=int, default=300)
    p.add_argument("--batch_size", type=int, default=8)
    p.add_argument("--proportion", type=float, default=0.5)
    p.add_argument("--fill", type=int, default=1000,
                   help="trajectories in the buffer before timing")
    p.add_argument("--out", default="benchmarks/results/replay_speed.json",
                   help="the JSON written (relative to the repository)")
    args = p.parse_args(argv)
    sources = _common.parse_sources(p, args.sources,
                                    "impala_tf/algorithm/replay.py")
    for name in ("rounds", "batches", "batch_size", "fill"):
        if getattr(args, name) < 1:
            p.error(f"--{name} must be at least 1")
    settings = {"batches": args.batches, "batch_size": args.batch_size,
                "proportion": args.proportion, "fill": args.fill}
    rows = []
    for r in range(1, args.rounds + 1):
        for source in sources:
            row = dict(_measure(source, settings), round=r,
                       source=_common.commit_of(source))
            rows.append(row)
            print(f"[replay_speed] round {r}, {row['source']}: "
                  f"{row['cpu_ms_per_batch']:.2f} CPU ms per batch",
                  flush=True)
    table = _common.format_table(rows, [
        ("round", "round", "{}"), ("source", "source", "{}"),
        ("cpu_ms_per_batch", "CPU ms/batch", "{:.2f}"),
        ("wall_ms_per_batch", "wall ms/batch", "{:.2f}"),
        ("compress_cpu_ms", "compress ms", "{:.3f}"),
        ("decompress_cpu_ms", "rebuild ms", "{:.3f}")])
    print(table)
    out = os.path.join(_common.REPO, args.out)
    _common.write_json(out, {"benchmark": "replay_speed",
                             "machine": _common.machine(),
                             "settings": settings, "results": rows,
                             "table": table.splitlines()})
    print(f"[replay_speed] written to {out}")
    return 0


if __name__ == "__main__":
    if sys.argv[1:2] == ["--worker"]:
        _worker(json.loads(sys.argv[2]))
    else:
        sys.exit(main(sys.argv[1:]))
