r"""Learning curves: train a configuration for N frames and S seeds, then plot.

  python -m benchmarks.learning_curve --flagfile=configs/pong_fast.cfg \
      --seeds=1,2 --frames=20000000 --out=docs/learning_pong \
      --reference=18 --reference_label="target +18"

Every trainer flag is accepted (`--flagfile`, `--level_name`, ...; flags
after a `--flagfile` override it) and passed on to
`python -m impala_tf.cli.experiment`. The seeds train one after another on this
machine, seed s in `<logdir>/seed_<s>` (default logdir:
`logs/learning_curve/<config name>`), each stopping at `--frames` (default:
the configuration's `--total_environment_frames`) or after `--timeout_s`
(SIGTERM: the trainer checkpoints and stops cleanly). The learning rate
keeps the configuration's schedule: it decays over the configuration's
`--learning_rate_decay_frames`, else its `--total_environment_frames`, not
over `--frames` (`--dry_run` prints each seed's trainer command line and
stops). Training runs inside a private network namespace (the
learner's gRPC server listens on every interface). Rerunning resumes each
seed from its checkpoint and skips seeds already at `--frames`;
`--plot_only` only redraws from the logdirs.

Outputs: `<out>.png` (mean return of the last 100 episodes against frames,
one line per seed and their mean; frames/s on a separate panel below),
`<out>.csv` (seed, env_frames, elapsed_s, fps, episode_return_mean), a
table on stdout (per seed: frames to first reach each of `--thresholds`,
final return, mean frames/s) and, with `--summary_json`, those numbers as
JSON. Bad input: one `error:` sentence, exit status 2.
"""

import csv
import json
import os
import re
import sys

from absl import app
from absl import flags

from benchmarks import _common
from impala_tf.runtime import sweep

FLAGS = flags.FLAGS
# Trainer flags this tool sets itself for each seed.
_SET_PER_SEED = ("logdir", "seed", "total_environment_frames",
                 "learning_rate_decay_frames")
RETURN_KEY = sweep.RETURN_KEY
CSV_COLUMNS = ("seed", "env_frames", "elapsed_s", "fps", RETURN_KEY)


# Shared with impala_tf.cli.ablation (impala_tf/runtime/sweep.py).
UsageError = sweep.UsageError
read_curve = sweep.read_curve


def frames_to_reach(rows, threshold):
    """env_frames of the first row whose return is >= threshold, or None."""
    for r in rows:
        if r[RETURN_KEY] is not None and r[RETURN_KEY] >= threshold:
            return r["env_frames"]
    return None


def mean_curve(curves, points=200):
    """The mean return across seeds on a shared frame grid.

    `curves`: {seed: rows}. Each seed's returns are interpolated linearly on
    `points` frame counts spanning the range every seed covers. Returns a
    list of rows (env_frames, episode_return_mean); [] if the seeds share
    no range.
    """
    import numpy as np
    series = []
    for rows in curves.values():
        pts = [(r["env_frames"], r[RETURN_KEY]) for r in rows
               if r[RETURN_KEY] is not None]
        if not pts:
            return []
        series.append(np.array(pts, dtype=np.float64))
    if not series:
        return []
    lo = max(s[0, 0] for s in series)
    hi = min(s[-1, 0] for s in series)
    if hi < lo:
        return []
    grid = np.linspace(lo, hi, points) if hi > lo else np.array([lo])
    mean = np.mean([np.interp(grid, s[:, 0], s[:, 1]) for s in series], 0)
    return [{"env_frames": int(f), RETURN_KEY: float(m)}
            for f, m in zip(grid, mean)]


def summarize(rows, thresholds):
    """Per-run numbers: frames to each threshold, final return, mean fps."""
    returns = [r for r in rows if r[RETURN_KEY] is not None]
    fps = [r["fps"] for r in rows if r.get("fps", 0) > 0]
    return {
        "frames_to": {_fmt_threshold(t): frames_to_reach(rows, t)
                      for t in thresholds},
        "final_frames": rows[-1]["env_frames"] if rows else 0,
        "final_return": returns[-1][RETURN_KEY] if returns else None,
        "mean_fps": sum(fps) / len(fps) if fps else None,
    }


def _fmt_threshold(t):
    return f"{t:+g}" if t else "0"


def write_csv(curves, path):
    """`curves`: {seed: rows} -> CSV with CSV_COLUMNS (blank: no return)."""
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(CSV_COLUMNS)
        for seed, rows in curves.items():
            for r in rows:
                w.writerow([seed, r["env_frames"], f"{r['elapsed_s']:.1f}",
                            f"{r['fps']:.1f}",
                            "" if r[RETURN_KEY] is None
                            else f"{r[RETURN_KEY]:.4f}"])


def plot(curves, path, title, reference=None, reference_label=None):
    """Draws the curves to `path` (PNG) and returns the matplotlib figure.

    Top panel: mean return (last 100 episodes) against frames, one line per
    seed, the mean across seeds (more than one seed), an optional dashed
    horizontal reference. Bottom panel: frames/s of each seed.
    """
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, (ax, ax_fps) = plt.subplots(
        2, 1, sharex=True, figsize=(8, 6),
        gridspec_kw={"height_ratios": [3, 1]})
    alpha = 0.55 if len(curves) > 1 else 1.0
    for i, (seed, rows) in enumerate(curves.items()):
        pts = [(r["env_frames"] / 1e6, r[RETURN_KEY]) for r in rows
               if r[RETURN_KEY] is not None]
        ax.plot([p[0] for p in pts], [p[1] for p in pts], color=f"C{i}",
                alpha=alpha, label=f"seed {seed}")
        ax_fps.plot([r["env_frames"] / 1e6 for r in rows],
                    [r["fps"] for r in rows], color=f"C{i}", alpha=0.7,
                    label=f"seed {seed}")
    if len(curves) > 1:
        mean = mean_curve(curves)
        ax.plot([r["env_frames"] / 1e6 for r in mean],
                [r[RETURN_KEY] for r in mean], color="black", linewidth=2,
                label=f"mean of {len(curves)} seeds")
    if reference is not None:
        ax.axhline(reference, color="grey", linestyle="--", linewidth=1,
                   label=reference_label or f"reference {reference:g}")
    ax.set_ylabel("mean return (last 100 episodes)")
    ax.grid(alpha=0.3)
    ax.legend(loc="best", fontsize="small")
    ax.set_title(title, fontsize="medium")
    ax_fps.set_ylabel("frames/s")
    ax_fps.set_xlabel("environment frames (millions)")
    ax_fps.grid(alpha=0.3)
    ax_fps.set_ylim(bottom=0)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    return fig


def report(curves, thresholds, mean=None):
    """The table printed at the end (a string) and the summary dict.

    One row per seed, and a "mean" row for the mean curve across seeds
    (`mean_curve`: its crossings are interpolated frame counts).
    """
    summary = {"thresholds": list(thresholds),
               "seeds": {str(s): summarize(rows, thresholds)
                         for s, rows in curves.items()}}
    named = [(f"seed {s}", n) for s, n in summary["seeds"].items()]
    if mean:
        summary["mean_of_seeds"] = summarize(mean, thresholds)
        named.append(("mean", summary["mean_of_seeds"]))
    rows = [dict(n, run=name, **{"to " + t: f for t, f in
                                 n["frames_to"].items()})
            for name, n in named]
    columns = ([("run", "run", "{}")]
               + [("to " + _fmt_threshold(t),
                   "frames to " + _fmt_threshold(t), "{:,}")
                  for t in thresholds]
               + [("final_frames", "frames", "{:,}"),
                  ("final_return", "final return", "{:.2f}"),
                  ("mean_fps", "mean frames/s", "{:,.0f}")])
    return _common.format_table(rows, columns), summary


def trainer_flags():
    """The trainer flags set on this command line or in its flagfiles, as
    `--name=value` strings (what the trainer itself would have read)."""
    return sweep.passed_flags(FLAGS, exclude=_SET_PER_SEED)


def config_frames():
    """The configuration's --total_environment_frames (or its suite's)."""
    if FLAGS.total_environment_frames:
        return FLAGS.total_environment_frames
    from impala_tf.envs import registry
    try:
        level_set = registry.parse_level_name(FLAGS.level_name)
    except registry.LevelError as e:
        raise UsageError(str(e)) from None
    return level_set.defaults["total_environment_frames"]


def schedule_frames():
    """Frames over which the configuration decays its learning rate."""
    return FLAGS.learning_rate_decay_frames or config_frames()


def trainer_command(seed, logdir, frames):
    """The command line that trains `seed` to `frames` in `logdir`."""
    return [sys.executable, "-m", "impala_tf.cli.experiment"] + trainer_flags() + [
        f"--logdir={logdir}", f"--seed={seed}",
        f"--total_environment_frames={frames}",
        f"--learning_rate_decay_frames={schedule_frames()}"]


def train_seed(seed, logdir, frames, timeout_s):
    """Trains one seed to `frames` in `logdir` (resuming); returns its
    exit status (0, or the trainer's after SIGTERM at the timeout)."""
    return sweep.train(trainer_command(seed, logdir, frames),
                       f"[learning_curve] seed {seed}:", timeout_s)


def _config_names(argv):
    """The names of the flagfiles on the command line, without .cfg."""
    files = [b if a == "--flagfile" else a[len("--flagfile="):]
             for a, b in zip(argv, argv[1:] + [""])
             if a == "--flagfile" or a.startswith("--flagfile=")]
    return [os.path.splitext(os.path.basename(f))[0] for f in files]


def run(argv):
    seeds = sweep.parse_list(FLAGS.seeds, "seeds", int)
    thresholds = sweep.parse_list(FLAGS.thresholds, "thresholds", float)
    config = "+".join(_config_names(argv)) or "defaults"
    base = FLAGS.logdir or os.path.join(
        "logs", "learning_curve", re.sub(r"[^A-Za-z0-9_.+-]+", "_", config))
    out = FLAGS.out or os.path.join(base, "learning_curve")
    frames = FLAGS.frames or config_frames()
    if FLAGS.dry_run:
        for seed in seeds:
            cmd = trainer_command(seed, os.path.join(base, f"seed_{seed}"),
                                  frames)
            print(f"[learning_curve] seed {seed}: {' '.join(cmd[1:])}")
        return 0
    if not FLAGS.plot_only:
        _common.ensure_private_network("benchmarks.learning_curve")
        for seed in seeds:
            logdir = os.path.join(base, f"seed_{seed}")
            if sweep.frames_done(logdir) >= frames:
                print(f"[learning_curve] seed {seed}: already at {frames:,} "
                      f"frames in {logdir}", flush=True)
                continue
            code = train_seed(seed, logdir, frames, FLAGS.timeout_s)
            if code != 0:
                print(f"error: seed {seed}'s training exited with status "
                      f"{code}", file=sys.stderr)
                return code if code > 0 else 1
    curves = {s: read_curve(os.path.join(base, f"seed_{s}")) for s in seeds}
    mean = mean_curve(curves) if len(curves) > 1 else None
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    write_csv(curves, out + ".csv")
    title = (f"impala_tf: {FLAGS.level_name}, {config}, "
             f"seed{'s' if len(seeds) > 1 else ''} "
             f"{', '.join(map(str, seeds))}")
    plot(curves, out + ".png", title, FLAGS.reference, FLAGS.reference_label)
    table, summary = report(curves, thresholds, mean)
    summary.update(level_name=FLAGS.level_name, config=config,
                   frames=frames, logdir=base)
    print(table)
    print(f"wrote {out}.csv and {out}.png")
    if FLAGS.summary_json:
        with open(FLAGS.summary_json, "w") as f:
            json.dump(summary, f, indent=2)
        print(f"wrote {FLAGS.summary_json}")
    return 0


def define_flags():
    """The trainer's flags plus this tool's (called once, by __main__)."""
    from impala_tf.cli import experiment  # noqa: F401  Defines the trainer's.
    flags.DEFINE_integer("frames", None, "Frames to train each seed for "
                         "(default: the configuration's "
                         "--total_environment_frames).", lower_bound=1)
    flags.DEFINE_list("seeds", ["1"], "Seeds, trained one after another.")
    flags.DEFINE_string("out", None, "Output prefix of .png and .csv "
                        "(default: <logdir>/learning_curve).")
    flags.DEFINE_bool("plot_only", False, "Only redraw from the logdirs.")
    flags.DEFINE_bool("dry_run", False, "Only print each seed's trainer "
                      "command line.")
    flags.DEFINE_float("timeout_s", 0, "Stop each seed's training after "
                       "this many seconds (SIGTERM: a clean stop with a "
                       "checkpoint); 0: none.", lower_bound=0)
    flags.DEFINE_list("thresholds", ["-15", "0", "18"], "Returns whose "
                      "first crossing the table reports (frames).")
    flags.DEFINE_float("reference", None, "Draw a dashed horizontal line "
                       "at this return.")
    flags.DEFINE_string("reference_label", None, "Legend of --reference.")
    flags.DEFINE_string("summary_json", None, "Also write the table's "
                        "numbers to this JSON file.")


def main(argv):
    sweep.run_main(run, argv)


if __name__ == "__main__":
    define_flags()
    app.run(main, flags_parser=sweep.flags_parser(FLAGS))
