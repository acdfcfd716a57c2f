r"""Table 1's architectures learning Pong: each mode's curve and frames to a return.

    python -m benchmarks.table1_learning --logdir=runs/table1_pong \
        [--seeds=3] [--thresholds=-19,-15,0] [--target=-15] \
        [--target_frames=10000000] [--out=benchmarks/results/table1_pong_learning]

Reads the runs that `impala-tf learning-curve --architecture=MODE
--logdir=<logdir>/MODE --seeds=...` trained (`<logdir>/<mode>/seed_<s>/
progress.jsonl`, every mode of `benchmarks.table1.MODES` that has one;
docs/TABLE1.md gives the commands) and writes, for each mode and seed, the
frames to each threshold (the first progress record whose mean return over
the last 100 episodes reaches it), the final return, the mean frames/s and
the wall hours, and whether the target return came by the target frames:

  <out>.json  the machine, the settings and every run's numbers
  <out>.csv   every run's curve (its "seed" column: "<mode> seed <s>")
  <out>.png   the curves on one plot, with the target drawn

and prints the table. Trains nothing. Exit status 0, or 2 with one
sentence when bad input or no run is found.
"""

import argparse
import os
import sys

from benchmarks import _common
from benchmarks import table1
from impala_tf.errors import UsageError
from impala_tf.runtime import curves
from impala_tf.runtime import sweep


def read_runs(logdir, seeds, modes=table1.MODES):
    """{"<mode> seed <s>": curve rows} of the runs found under `logdir`,
    in `modes` order, then seeds."""
    found = {}
    for mode in modes:
        for seed in seeds:
            run_dir = os.path.join(logdir, mode, f"seed_{seed}")
            if os.path.exists(os.path.join(run_dir, "progress.jsonl")):
                found[f"{mode} seed {seed}"] = sweep.read_curve(run_dir)
    return found


def summarize(runs, thresholds, target, target_frames):
    """{run: curves.summarize(...) plus "frames_to_target" and "met":
    True (the target return at or before `target_frames`), False (not by
    then) or None (the run has not reached `target_frames` yet)}."""
    out = {}
    for name, rows in runs.items():
        numbers = curves.summarize(rows, thresholds)
        reached = curves.frames_to_reach(rows, target)
        numbers["frames_to_target"] = reached
        if reached is not None and reached <= target_frames:
            numbers["met"] = True
        elif numbers["final_frames"] < target_frames:
            numbers["met"] = None
        else:
            numbers["met"] = False
        out[name] = numbers
    return out


def format_table(numbers, thresholds, target, target_frames):
    """The printed table (a string)."""
    keys = [curves.format_threshold(t) for t in thresholds]
    said = {True: "yes", False: "no", None: "not yet"}
    rows = [dict(n, run=name, met=said[n["met"]],
                 **{"to " + k: n["frames_to"][k] for k in keys})
            for name, n in numbers.items()]
    columns = ([("run", "run", "{}")]
               + [("to " + k, "frames to " + k, "{:,}") for k in keys]
               + [("final_frames", "frames", "{:,}"),
                  ("final_return", "final return", "{:.2f}"),
                  ("mean_fps", "mean frames/s", "{:,.0f}"),
                  ("wall_hours", "wall hours", "{:.2f}"),
                  ("met", f"{curves.format_threshold(target)} by "
                   f"{target_frames:,}", "{}")])
    return curves.format_table(rows, columns)


def _parse(argv):
    p = argparse.ArgumentParser(prog="python -m benchmarks.table1_learning",
                                description=__doc__.split("\n")[0])
    p.add_argument("--logdir", required=True,
                   help="the directory holding <mode>/seed_<s> runs")
    p.add_argument("--seeds", default="3", help="comma-separated ints")
    p.add_argument("--thresholds", default="-19,-15,0",
                   help="comma-separated returns")
    p.add_argument("--target", type=float, default=-15.0,
                   help="the stated return")
    p.add_argument("--target_frames", type=int, default=10_000_000,
                   help="the frames by which the target return is due")
    p.add_argument("--out", default="benchmarks/results/table1_pong_learning",
                   help="output prefix of .json, .csv and .png (relative "
                   "to the repository)")
    args = p.parse_args(argv)
    try:
        args.seeds = sweep.parse_list(args.seeds, "seeds", int)
        args.thresholds = sweep.parse_list(args.thresholds,
                                           "thresholds", float)
    except UsageError as e:
        p.error(str(e))
    return args


def main(argv):
    args = _parse(argv)
    try:
        runs = read_runs(args.logdir, args.seeds)
    except UsageError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if not runs:
        print(f"error: no <mode>/seed_<s>/progress.jsonl under "
              f"{args.logdir} for seeds {args.seeds}; train first (docs/"
              "TABLE1.md) or check --logdir and --seeds", file=sys.stderr)
        return 2
    numbers = summarize(runs, args.thresholds, args.target,
                        args.target_frames)
    table = format_table(numbers, args.thresholds, args.target,
                         args.target_frames)
    out = os.path.join(_common.REPO, args.out)
    os.makedirs(os.path.dirname(out), exist_ok=True)
    _common.write_json(out + ".json", {
        "machine": _common.machine(), "logdir": args.logdir,
        "thresholds": args.thresholds, "target": args.target,
        "target_frames": args.target_frames, "runs": numbers})
    curves.write_csv(runs, out + ".csv")
    curves.plot(runs, out + ".png",
                "impala_tf: Pong, configs/pong_fast.cfg, one seed per "
                "architecture", label="{}", band=False,
                references=[(f"target {curves.format_threshold(args.target)}",
                             args.target)])
    print(table)
    print(f"wrote {out}.json, {out}.csv and {out}.png")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
