r"""Configurations compared on learning: frames to each return over seeds, one plot.

    python -m benchmarks.compare_learning \
        --run="pong_fast.cfg=docs/learning_pong.csv" \
        --run="pong_fast.cfg + replay=runs/pong_replay:1,2,3" \
        [--thresholds=-15,0,18] [--title=...] \
        --out=benchmarks/results/pong_replay

Each --run is LABEL=SOURCE, seeds of one configuration; --run flags with
one label add up (a seed may come once). SOURCE is a directory of
`seed_<s>` runs (as `impala-tf learning-curve --logdir` trains them) with
the seeds after a colon, or a CSV that `impala-tf learning-curve --out`
wrote (every seed in it, or those after a colon). What a lever changes is
then read as the median and range over seeds of the frames to each
threshold (the first progress record whose mean return over the last 100
episodes reaches it), beside the seeds of the configuration it changes:

  <out>.json  the machine, the sources and every configuration's numbers
  <out>.png   each configuration's seeds, mean and min-max band

and prints one table per configuration (per seed, median, range). Trains
nothing. Exit status 0, or 2 with one sentence on bad input.
"""

import argparse
import os
import sys

from benchmarks import _common
from impala_tf.errors import UsageError
from impala_tf.runtime import curves
from impala_tf.runtime import sweep


def parse_run(text):
    """"LABEL=SOURCE[:SEEDS]" -> (label, source, seeds: list of str, or
    None for every seed of a CSV). UsageError if malformed."""
    label, eq, source = text.partition("=")
    if not eq or not label or not source:
        raise UsageError(f"--run={text!r} is not LABEL=SOURCE")
    path, colon, seeds = source.rpartition(":")
    if not colon:
        path, seeds = source, ""
    if seeds:
        seeds = [str(s) for s in sweep.parse_list(seeds, "run seeds", int)]
    return label, path, seeds or None


def parse_reference(text):
    """"LABEL=RETURN" -> (label, float). UsageError if malformed."""
    label, eq, value = text.rpartition("=")
    try:
        if eq and label:
            return label, float(value)
    except ValueError:
        pass
    raise UsageError(f"--reference={text!r} is not LABEL=RETURN")


def read_source(path, seeds):
    """{seed: curve rows} of one configuration: a CSV (`curves.read_csv`)
    or `<path>/seed_<s>` run directories (`sweep.read_curve`)."""
    if path.endswith(".csv"):
        return curves.read_csv(path, seeds)
    if seeds is None:
        raise UsageError(f"{path} is a directory of runs: give its seeds "
                         "after a colon (DIR:1,2,3)")
    if not os.path.isdir(path):
        raise UsageError(f"{path} is neither a CSV nor a directory")
    return {s: sweep.read_curve(os.path.join(path, f"seed_{s}"))
            for s in seeds}


def read_groups(runs):
    """{label: {seed: curve rows}} from parsed --run flags, in their order;
    the sources of one label merged. UsageError for a seed given twice."""
    groups = {}
    for label, path, seeds in runs:
        group = groups.setdefault(label, {})
        for seed, rows in read_source(path, seeds).items():
            if seed in group:
                raise UsageError(f"seed {seed} of {label!r} comes from two "
                                 "sources")
            group[seed] = rows
    return groups


def compare(groups, thresholds):
    """{label: curves.report(...)}: (table string, summary dict) of each
    configuration."""
    return {label: curves.report(runs, thresholds)
            for label, runs in groups.items()}


def _parse(argv):
    p = argparse.ArgumentParser(prog="python -m benchmarks.compare_learning",
                                description=__doc__.split("\n")[0])
    p.add_argument("--run", action="append", required=True,
                   help="LABEL=SOURCE: a CSV of learning-curve "
                   "(FILE.csv[:SEEDS]) or a directory of seed_<s> runs "
                   "(DIR:SEEDS); repeat for each configuration")
    p.add_argument("--thresholds", default="-15,0,18",
                   help="comma-separated returns")
    p.add_argument("--reference", action="append", default=[],
                   help="LABEL=RETURN: a horizontal line (repeatable)")
    p.add_argument("--title", default="configurations compared",
                   help="the plot's title")
    p.add_argument("--out", default="benchmarks/results/compare_learning",
                   help="output prefix of .json and .png (relative to the "
                   "repository)")
    args = p.parse_args(argv)
    try:
        args.thresholds = sweep.parse_list(args.thresholds, "thresholds",
                                           float)
        args.run = [parse_run(r) for r in args.run]
        args.reference = [parse_reference(r) for r in args.reference]
    except UsageError as e:
        p.error(str(e))
    return args


def main(argv):
    args = _parse(argv)
    try:
        groups = read_groups(args.run)
    except UsageError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    reports = compare(groups, args.thresholds)
    out = os.path.join(_common.REPO, args.out)
    os.makedirs(os.path.dirname(out), exist_ok=True)
    _common.write_json(out + ".json", {
        "machine": _common.machine(),
        "runs": [{"label": label, "source": path, "seeds": seeds}
                 for label, path, seeds in args.run],
        "thresholds": args.thresholds,
        "configurations": {label: summary
                           for label, (_, summary) in reports.items()}})
    curves.plot_groups(groups, out + ".png", args.title,
                       references=args.reference)
    for label, (table, _) in reports.items():
        print(f"{label}:\n{table}\n")
    print(f"wrote {out}.json and {out}.png")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
