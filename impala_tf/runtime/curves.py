"""Learning curves of several seeds: thresholds, the band across seeds, plots.

A curve is one run's list of rows from `sweep.read_curve` (dicts with
env_frames, elapsed_s, fps, episodes and the mean return of the last 100
episodes, RETURN_KEY, None before the first finished episode); `curves`
maps a seed to its curve. `impala_tf.cli.learning_curve` trains the seeds
and calls these; the Table 2 ablation reads runs the same way.
"""

import csv
import math

import numpy as np

from impala_tf import errors
from impala_tf.runtime import progress
from impala_tf.runtime import sweep

RETURN_KEY = sweep.RETURN_KEY
CSV_COLUMNS = ("seed", "env_frames", "elapsed_s", "wall_s", "fps",
               "episodes", RETURN_KEY)


def frames_to_reach(rows, threshold):
    """env_frames of the first row whose return is >= threshold over a full
    window (`progress.reached_return`: at least RETURN_WINDOW finished
    episodes, so a lucky first few games never count), or None. Rows read
    from a CSV written before it had the episodes column (`read_csv`:
    episodes None) count as full."""
    for r in rows:
        if progress.reached_return(_as_read(r), threshold):
            return r["env_frames"]
    return None


def _as_read(row):
    """`row` as `progress.reached_return` reads it: a row without an
    episode count (a CSV written before that column) counts as a full
    window."""
    if row.get("episodes") is None:
        return dict(row, episodes=progress.RETURN_WINDOW)
    return row


def wall_seconds(rows):
    """Wall-clock seconds of training up to each row, across resumes.

    A resumed run restarts elapsed_s at 0; its time adds to the time
    before. Returns a list of floats, one per row.
    """
    total, last, out = 0.0, 0.0, []
    for r in rows:
        elapsed = r["elapsed_s"]
        total += elapsed - last if elapsed >= last else elapsed
        last = elapsed
        out.append(total)
    return out


def rate_points(rows):
    """(millions of env_frames, fps) for the frames/s panel of a plot.

    Each row's fps is the rate over the interval since the row before. A
    row whose interval is under half the run's median interval (the record
    a stop writes a few seconds after a periodic one, its shutdown time
    included) measured a few seconds at most, so its rate is noise and is
    left out; a full interval with no frames (a stall) stays in, at 0. A
    stop's record with no frames since the last one never gets here as a
    short interval: `sweep.read_curve` merges it into that row. A CSV
    written before that merge keeps such a row at 0.
    Returns two lists of floats of equal length.
    """
    wall = wall_seconds(rows)
    gaps = np.diff([0.0] + wall)
    floor = 0.5 * float(np.median(gaps)) if len(gaps) else 0.0
    kept = [(r["env_frames"] / 1e6, r["fps"])
            for r, gap in zip(rows, gaps) if gap >= floor]
    return [k[0] for k in kept], [k[1] for k in kept]


def seed_band(curves, points=200):
    """The mean, minimum and maximum return across seeds on one frame grid.

    Each seed's returns are interpolated linearly on `points` frame counts
    spanning the range every seed covers (rows without a return are
    skipped). Returns a dict of numpy arrays `frames`, `mean`, `min`,
    `max` (float64 [points]), or None if a seed has no return yet or the
    seeds share no range.
    """
    series = []
    for rows in curves.values():
        pts = [(r["env_frames"], r[RETURN_KEY]) for r in rows
               if r[RETURN_KEY] is not None]
        if not pts:
            return None
        series.append(np.array(pts, dtype=np.float64))
    if not series:
        return None
    lo = max(s[0, 0] for s in series)
    hi = min(s[-1, 0] for s in series)
    if hi < lo:
        return None
    grid = np.linspace(lo, hi, points) if hi > lo else np.array([lo])
    values = np.stack([np.interp(grid, s[:, 0], s[:, 1]) for s in series])
    return {"frames": grid, "mean": values.mean(0), "min": values.min(0),
            "max": values.max(0)}


def best_return(rows):
    """(return, env_frames) of the row with the highest return over a full
    window (as `frames_to_reach` counts them; the first such row on a
    tie), or (None, None) if no row has one."""
    full = [r for r in rows
            if progress.reached_return(_as_read(r), -math.inf)]
    if not full:
        return None, None
    best = max(full, key=lambda r: r[RETURN_KEY])  # The first on a tie.
    return best[RETURN_KEY], best["env_frames"]


def summarize(rows, thresholds):
    """One run's numbers: frames to each threshold, final frames and
    return, the best return over a full window and its frames, mean
    frames/s and wall-clock hours."""
    returns = [r for r in rows if r[RETURN_KEY] is not None]
    fps = [r["fps"] for r in rows if r.get("fps", 0) > 0]
    best, best_frames = best_return(rows)
    return {
        "frames_to": {format_threshold(t): frames_to_reach(rows, t)
                      for t in thresholds},
        "final_frames": rows[-1]["env_frames"] if rows else 0,
        "final_return": returns[-1][RETURN_KEY] if returns else None,
        "best_return": best,
        "best_return_frames": best_frames,
        "mean_fps": sum(fps) / len(fps) if fps else None,
        "wall_hours": (wall_seconds(rows)[-1] / 3600 if rows
                       and "elapsed_s" in rows[0] else None),
    }


def across_seeds(per_seed, thresholds):
    """Median and range over seeds of the frames to each threshold.

    per_seed: {seed: summarize(...)}. Returns {threshold: {"median",
    "min", "max", "reached", "seeds"}}: the statistics over the seeds that
    reached it (None if none did), how many did and how many there are.
    """
    out = {}
    for t in map(format_threshold, thresholds):
        reached = [n["frames_to"][t] for n in per_seed.values()
                   if n["frames_to"][t] is not None]
        out[t] = {"median": float(np.median(reached)) if reached else None,
                  "min": min(reached) if reached else None,
                  "max": max(reached) if reached else None,
                  "reached": len(reached), "seeds": len(per_seed)}
    return out


def format_threshold(t):
    return f"{t:+g}" if t else "0"


def format_table(rows, columns):
    """A right-aligned text table. rows: dicts; columns: (key, header,
    format) triples; a missing or None value prints as '-'."""
    cells = [[h for _, h, _ in columns]]
    for r in rows:
        cells.append([("-" if r.get(k) is None else fmt.format(r[k]))
                      for k, _, fmt in columns])
    widths = [max(len(row[i]) for row in cells) for i in range(len(columns))]
    return "\n".join("  ".join(c.rjust(w) for c, w in zip(row, widths))
                     for row in cells)


def write_csv(curves, path):
    """`curves`: {seed: rows} -> CSV with CSV_COLUMNS (blank: no return).
    `episodes` is how many games had finished, so a reader can tell a mean
    over a full 100-game window from one over the first few games."""
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(CSV_COLUMNS)
        for seed, rows in curves.items():
            for r, wall in zip(rows, wall_seconds(rows)):
                w.writerow([seed, r["env_frames"], f"{r['elapsed_s']:.1f}",
                            f"{wall:.1f}", f"{r['fps']:.1f}",
                            r.get("episodes", ""),
                            "" if r[RETURN_KEY] is None
                            else f"{r[RETURN_KEY]:.4f}"])


def read_csv(path, seeds=None):
    """The curves of a CSV that `write_csv` wrote: {seed (str): rows}, rows
    as `sweep.read_curve`'s, in file order; only `seeds` (strs) if given.

    Older files lack wall_s (derived again from elapsed_s) or episodes
    (None: not recorded). Raises UsageError if the file cannot be read,
    lacks a column every version has, or lacks a seed asked for.
    """
    try:
        with open(path, newline="") as f:
            records = list(csv.DictReader(f))
    except OSError as e:
        raise errors.UsageError(f"cannot read {path}: {e.strerror}") from None
    need = {"seed", "env_frames", "elapsed_s", "fps", RETURN_KEY}
    if records and not need <= set(records[0]):
        raise errors.UsageError(
            f"{path} is not a learning-curve CSV (it lacks "
            f"{', '.join(sorted(need - set(records[0])))})")
    out = {}
    try:
        for r in records:
            if seeds is not None and r["seed"] not in seeds:
                continue
            episodes = r.get("episodes")
            out.setdefault(r["seed"], []).append({
                "env_frames": int(r["env_frames"]),
                "elapsed_s": float(r["elapsed_s"]), "fps": float(r["fps"]),
                RETURN_KEY: (float(r[RETURN_KEY]) if r[RETURN_KEY]
                             else None),
                "episodes": int(episodes) if episodes else None})
    except ValueError as e:
        raise errors.UsageError(f"{path}: a value is not a number ({e})"
                                ) from None
    missing = [s for s in (seeds or ()) if s not in out]
    if missing or not out:
        raise errors.UsageError(f"{path} has no rows for seed(s) "
                                f"{', '.join(missing) or 'any'}")
    return out


def plot(curves, path, title, references=(), label="seed {}", band=True):
    """Draws the curves to `path` (PNG) and returns the matplotlib figure.

    Top panel: mean return (last 100 episodes) against frames, one thin
    line per seed and, for more than one seed and `band`, their mean
    (thick) inside the min-max band across seeds; `references`, a sequence
    of (label, return) pairs (e.g. the game's random and human scores, a
    target), as horizontal dashed or dotted lines. Middle panel: frames/s
    of each seed. Bottom panel: each seed's wall-clock hours. `label`
    formats a key of `curves` for the legend (e.g. "{}" for runs named by
    their configuration rather than a seed).
    """
    import matplotlib  # pylint: disable=import-outside-toplevel
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # pylint: disable=import-outside-toplevel
    fig, (ax, ax_fps, ax_wall) = plt.subplots(
        3, 1, sharex=True, figsize=(8, 7.5),
        gridspec_kw={"height_ratios": [3, 1, 1]})
    several = len(curves) > 1 and band
    for i, (seed, rows) in enumerate(curves.items()):
        pts = [(r["env_frames"] / 1e6, r[RETURN_KEY]) for r in rows
               if r[RETURN_KEY] is not None]
        ax.plot([p[0] for p in pts], [p[1] for p in pts], color=f"C{i}",
                alpha=0.5 if several else 1.0,
                linewidth=0.8 if several else 1.5, label=label.format(seed))
        millions = [r["env_frames"] / 1e6 for r in rows]
        ax_fps.plot(*rate_points(rows), color=f"C{i}",
                    alpha=0.7, label=label.format(seed))
        ax_wall.plot(millions, [w / 3600 for w in wall_seconds(rows)],
                     color=f"C{i}", alpha=0.7, label=label.format(seed))
    band = seed_band(curves) if several else None
    if band is not None:
        ax.fill_between(band["frames"] / 1e6, band["min"], band["max"],
                        color="grey", alpha=0.25,
                        label=f"min-max of {len(curves)} seeds")
        ax.plot(band["frames"] / 1e6, band["mean"], color="black",
                linewidth=2, label=f"mean of {len(curves)} seeds")
    _dress(ax, ax_fps, title, references)
    ax_wall.set_ylabel("wall hours")
    ax_wall.set_xlabel("environment frames (millions)")
    ax_wall.grid(alpha=0.3)
    ax_wall.set_ylim(bottom=0)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    return fig


def plot_groups(groups, path, title, references=()):
    """Draws configurations against each other to `path` (PNG) and returns
    the matplotlib figure.

    groups: {label: {seed: rows}}. Top panel: each group's seeds as thin
    lines of one colour and, for several seeds, their mean (thick) inside
    their min-max band (`seed_band`); `references` as in `plot`. Bottom
    panel: each seed's frames/s in its group's colour.
    """
    import matplotlib  # pylint: disable=import-outside-toplevel
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # pylint: disable=import-outside-toplevel
    fig, (ax, ax_fps) = plt.subplots(2, 1, sharex=True, figsize=(8, 6.5),
                                     gridspec_kw={"height_ratios": [3, 1]})
    for i, (label, curves) in enumerate(groups.items()):
        color = f"C{i}"
        for j, rows in enumerate(curves.values()):
            pts = [(r["env_frames"] / 1e6, r[RETURN_KEY]) for r in rows
                   if r[RETURN_KEY] is not None]
            ax.plot([p[0] for p in pts], [p[1] for p in pts], color=color,
                    alpha=0.35, linewidth=0.7,
                    label=f"{label}: {len(curves)} seed(s)" if j == 0
                    else None)
            ax_fps.plot(*rate_points(rows), color=color, alpha=0.5,
                        linewidth=0.7)
        band = seed_band(curves) if len(curves) > 1 else None
        if band is not None:
            ax.fill_between(band["frames"] / 1e6, band["min"], band["max"],
                            color=color, alpha=0.15)
            ax.plot(band["frames"] / 1e6, band["mean"], color=color,
                    linewidth=2, label=f"{label}: mean and min-max")
    _dress(ax, ax_fps, title, references)
    ax_fps.set_xlabel("environment frames (millions)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    return fig


def _dress(ax, ax_fps, title, references):
    """The return panel's reference lines, labels, legend and title, and
    the frames/s panel's label and grid."""
    for i, (name, value) in enumerate(references):
        ax.axhline(value, color=("dimgrey", "tab:red", "tab:green")[i % 3],
                   linestyle=("--", ":", "-.")[i % 3], linewidth=1,
                   label=name)
    ax.set_ylabel("mean return (last 100 episodes)")
    ax.grid(alpha=0.3)
    ax.legend(loc="best", fontsize="small")
    ax.set_title(title, fontsize="medium")
    ax_fps.set_ylabel("frames/s")
    ax_fps.grid(alpha=0.3)
    ax_fps.set_ylim(bottom=0)


def report(curves, thresholds):
    """The table printed at the end (a string) and the summary dict.

    One row per seed; for several seeds, a "median" row (the median over
    the seeds that reached each threshold, with how many did) and a
    "range" row (fastest-slowest), and the summary's "across_seeds".
    """
    per_seed = {str(s): summarize(rows, thresholds)
                for s, rows in curves.items()}
    summary = {"thresholds": list(thresholds), "seeds": per_seed}
    named = [(f"seed {s}", n) for s, n in per_seed.items()]
    rows = [dict(n, run=name, best=_best_text(n),
                 **{"to " + t: f"{f:,}" if f else None
                    for t, f in n["frames_to"].items()})
            for name, n in named]
    if len(curves) > 1:
        stats = across_seeds(per_seed, thresholds)
        summary["across_seeds"] = stats
        median, span = {"run": "median"}, {"run": "range"}
        for t, s in stats.items():
            if s["median"] is not None:
                median["to " + t] = (f"{s['median']:,.0f} "
                                     f"({s['reached']}/{s['seeds']})")
                span["to " + t] = f"{s['min']:,}-{s['max']:,}"
            else:
                median["to " + t] = f"- (0/{s['seeds']})"
        rows += [median, span]
    columns = ([("run", "run", "{}")]
               + [("to " + format_threshold(t),
                   "frames to " + format_threshold(t), "{}")
                  for t in thresholds]
               + [("final_frames", "frames", "{:,}"),
                  ("final_return", "final return", "{:.2f}"),
                  ("best", "best (at frames)", "{}"),
                  ("mean_fps", "mean frames/s", "{:,.0f}"),
                  ("wall_hours", "wall hours", "{:.2f}")])
    return format_table(rows, columns), summary


def _best_text(numbers):
    """"18.46 (10,993,600)" from `summarize`'s best return, or None."""
    if numbers["best_return"] is None:
        return None
    return (f"{numbers['best_return']:.2f} "
            f"({numbers['best_return_frames']:,})")
