r"""PBT against the same members without evolution: numbers and curves.

    python -m benchmarks.pbt_toy --pbt=DIR --control=DIR --output=docs/pbt_toy.png

DIR: a population directory of `impala-tf pbt`, the control one
run with the same flags and `--pbt_burn_in_frames` above
`--total_environment_frames` (docs/PBT.md gives the commands). Prints, per
member, its initial hyperparameters (run_config.json), its final running
mean return and the frames at which it first reached a return of 9 in each
run, then the population's mean; draws each member's return against frames.
"""

import argparse
import json
import os
import sys

import numpy as np

from impala_tf.pbt import population as pbt_population
from impala_tf.runtime import progress


def _members(logdir):
    return sorted(int(n.split("_")[1]) for n in os.listdir(logdir)
                  if n.startswith("member_"))


def _curve(logdir, member):
    records = progress.read_records(os.path.join(logdir, f"member_{member}"))
    return [(r["env_frames"], r["episode_return_mean"]) for r in records
            if r.get("episode_return_mean") is not None]


def _initial(logdir, member):
    with open(os.path.join(logdir, f"member_{member}",
                           "run_config.json")) as f:
        learner = json.load(f)["learner"]
    return {k: learner[k] for k in ("learning_rate", "entropy_cost",
                                    "epsilon")}


def summary(logdir, threshold=9.0):
    """{member: (initial, final return, frames to `threshold` or None)}."""
    out = {}
    for m in _members(logdir):
        curve = _curve(logdir, m)
        reached = [f for f, r in curve if r >= threshold]
        out[m] = (_initial(logdir, m), curve[-1][1] if curve else None,
                  reached[0] if reached else None)
    return out


def main(argv):
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.pbt_toy",
        description=__doc__.split("\n\n")[0])
    parser.add_argument("--pbt", required=True,
                        help="the PBT population's directory")
    parser.add_argument("--control", required=True,
                        help="the same members' directory without evolution")
    parser.add_argument("--output", required=True, help="the PNG to write")
    args = vars(parser.parse_args(argv[1:]))
    runs = {"PBT": args["pbt"], "no evolution": args["control"]}
    for name, logdir in runs.items():
        rows = summary(logdir)
        copies = sum(e["copied"] for e in pbt_population.read_events(logdir))
        print(f"{name}: {len(rows)} members, {copies} copies")
        for m, (initial, final, reached) in rows.items():
            print(f"  member {m}: lr {initial['learning_rate']:.2e}, entropy "
                  f"{initial['entropy_cost']:.2e}, eps "
                  f"{initial['epsilon']:.0e} -> final return {final:.2f}, "
                  f"return >= 9 at {reached if reached else 'never'}")
        finals = [final for _, final, _ in rows.values()]
        print(f"  mean final return {np.mean(finals):.2f}, best "
              f"{np.max(finals):.2f}, worst {np.min(finals):.2f}")
    import matplotlib  # pylint: disable=import-outside-toplevel
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # pylint: disable=import-outside-toplevel
    fig, axes = plt.subplots(1, 2, sharey=True, figsize=(10, 3.8))
    for ax, (name, logdir) in zip(axes, runs.items()):
        for m in _members(logdir):
            curve = _curve(logdir, m)
            if curve:
                ax.plot(*zip(*curve), label=f"member {m}")
        ax.set_title(name, fontsize=10)
        ax.set_xlabel("environment frames")
    axes[0].set_ylabel("running mean return (toy level, best 10)")
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(args["output"], dpi=90)
    print(f"curves written to {args['output']}")


if __name__ == "__main__":
    main(sys.argv)
