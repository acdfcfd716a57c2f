"""`impala-tf pbt --plot`: a population's history as one PNG.

One panel for the fitness and one per hyperparameter that changes in the
events (log scale), each member a line against its frames, from
`<logdir>/pbt.jsonl`; a marker where a member copied another. A last panel
draws each member's running mean return from its progress.jsonl.
"""

import collections

from impala_tf.pbt import population as pbt_population
from impala_tf.runtime import progress


def plot(logdir, output):
    """Draws the population in `logdir` to the PNG `output` (matplotlib,
    Agg); returns the number of torn lines of pbt.jsonl it skipped
    (`pbt_population.read_event_log`). Raises ValueError if pbt.jsonl has
    no event yet."""
    import matplotlib  # pylint: disable=import-outside-toplevel
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # pylint: disable=import-outside-toplevel

    events, torn = pbt_population.read_event_log(logdir)
    if not events:
        raise ValueError(f"{logdir}/{pbt_population.EVENTS_FILE} has no "
                         "event yet" + (f" ({torn} torn lines skipped)"
                                        if torn else ""))
    by_member = collections.defaultdict(list)
    for e in events:
        by_member[e["member"]].append(e)
    names = sorted(n for n in {n for e in events
                               for n in e["hyperparameters"]}
                   if len({e["hyperparameters"][n] for e in events}) > 1)
    panels = ["fitness"] + names + ["episode_return_mean"]
    fig, axes = plt.subplots(len(panels), 1, sharex=True,
                             figsize=(8, 2.2 * len(panels)))
    population = pbt_population.Population(logdir, len(by_member))
    for member in sorted(by_member):
        history = by_member[member]
        frames = [e["frames"] for e in history]
        for ax, name in zip(axes, panels[:-1]):
            ys = [e["fitness"] if name == "fitness"
                  else e["hyperparameters"][name] for e in history]
            line, = ax.plot(frames, ys, label=f"member {member}")
            copies = [(f, y) for f, y, e in zip(frames, ys, history)
                      if e["copied"]]
            if copies:
                ax.plot(*zip(*copies), "o", color=line.get_color(), ms=4)
        records = progress.read_records(population.member_dir(member))
        points = [(r["env_frames"], r["episode_return_mean"])
                  for r in records if r.get("episode_return_mean") is not None]
        if points:
            axes[-1].plot(*zip(*points), label=f"member {member}")
    for ax, name in zip(axes, panels):
        ax.set_ylabel(name, fontsize=8)
        if name not in ("fitness", "episode_return_mean"):
            ax.set_yscale("log")
    axes[0].legend(fontsize=7)
    axes[0].set_title("population-based training (dots: copied another "
                      "member)", fontsize=9)
    axes[-1].set_xlabel("environment frames")
    fig.tight_layout()
    fig.savefig(output, dpi=90)
    plt.close(fig)
    return torn
