r"""Learning curves: train a configuration for N frames and S seeds, then plot.

  impala-tf learning-curve --flagfile=configs/pong_fast.cfg \
      --seeds=1,2 --frames=20000000 --out=docs/learning_pong \
      --reference=18 --reference_label="target +18"

Every trainer flag is accepted (`--flagfile`, `--level_name`, ...; flags
after a `--flagfile` override it) and passed on to `impala-tf train`. The
seeds train one after another on this machine (`--parallel=N`: N at a
time, each one's output in `<logdir>/seed_<s>.log`), seed s in
`<logdir>/seed_<s>` (default logdir: `logs/learning_curve/<config name>`),
each stopping at `--frames` (default: the configuration's
`--total_environment_frames`) or after `--timeout_s` (SIGTERM: the trainer
checkpoints and stops cleanly) or, with the trainer's `--stop_at_return`,
once the mean return of the last 100 games reaches it. The learning rate
keeps the configuration's schedule: it decays over the configuration's
`--learning_rate_decay_frames`, else its `--total_environment_frames`, not
over `--frames` (`--dry_run` prints each seed's trainer command line and
stops). Rerunning resumes each seed from its checkpoint and skips seeds
already at `--frames` or at `--stop_at_return`; `--plot_only` only redraws
from the logdirs.

Outputs: `<out>.png` (mean return of the last 100 episodes against frames,
one line per seed, their mean and the min-max band across seeds,
`--reference` and the level's random and human scores where its suite has
them; frames/s and wall-clock hours on panels below), `<out>.csv` (seed, env_frames,
elapsed_s, wall_s, fps, episode_return_mean), a table on stdout (per seed:
frames to first reach each of `--thresholds`, final return, the best
return over a full window and where, mean frames/s, wall hours; over the seeds: the median and the range of the frames to each
threshold and how many seeds reached it) and, with `--summary_json`, those
numbers as JSON (`impala_tf.runtime.curves`). Bad input: one `error:`
sentence, exit status 2.
"""

import json
import os
import re
import sys

from absl import app
from absl import flags

from impala_tf.envs import registry
from impala_tf.errors import UsageError
from impala_tf.runtime import curves as curves_lib
from impala_tf.runtime import sweep

FLAGS = flags.FLAGS
# Trainer flags this tool sets itself for each seed.
_SET_PER_SEED = ("logdir", "seed", "total_environment_frames",
                 "learning_rate_decay_frames")


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


def train_seeds(seeds, base, frames, parallel, timeout_s):
    """Trains each seed not yet done to `frames` in `<base>/seed_<s>`
    (resuming), `parallel` at a time; with more than one at a time each
    one's output goes to `<base>/seed_<s>.log`. Returns {seed: exit
    status, output file or None)} of the seeds that failed (none: all
    done)."""
    jobs = []
    for seed in seeds:
        logdir = os.path.join(base, f"seed_{seed}")
        if sweep.done(logdir, frames, FLAGS.stop_at_return):
            print(f"[learning_curve] seed {seed}: done in {logdir} (at "
                  f"{sweep.frames_done(logdir):,} of {frames:,} frames)",
                  flush=True)
            continue
        output = None
        if parallel > 1:
            os.makedirs(base, exist_ok=True)
            output = os.path.join(base, f"seed_{seed}.log")
        jobs.append((seed, sweep.Job(trainer_command(seed, logdir, frames),
                                     f"[learning_curve] seed {seed}:",
                                     output)))
    codes = sweep.train_all([job for _, job in jobs], parallel, timeout_s)
    return {seed: (code, job.output) for (seed, job), code in zip(jobs, codes)
            if code not in (0, None)}


def _config_names(argv):
    """The names of the flagfiles on the command line, without .cfg."""
    files = [b if a == "--flagfile" else a[len("--flagfile="):]
             for a, b in zip(argv, argv[1:] + [""])
             if a == "--flagfile" or a.startswith("--flagfile=")]
    return [os.path.splitext(os.path.basename(f))[0] for f in files]


def references():
    """(label, return) pairs the plot draws: `--reference`, then the
    level's random and human scores where its suite has them and
    `--suite_references` is on (a single level: `--level_name=atari/pong`,
    a DMLab-30 level)."""
    out = []
    if FLAGS.reference is not None:
        out.append((FLAGS.reference_label or f"reference {FLAGS.reference:g}",
                    FLAGS.reference))
    if FLAGS.suite_references:
        level_set = registry.parse_level_name(FLAGS.level_name)
        if len(level_set.levels) == 1:
            level = level_set.levels[0]
            out.extend((f"{label} {value:g}", value) for label, value in
                       level_set.reference_returns(level).items())
    return out


def run(argv):
    seeds = sweep.parse_list(FLAGS.seeds, "seeds", int)
    thresholds = sweep.parse_list(FLAGS.thresholds, "thresholds", float)
    config = "+".join(_config_names(argv)) or "defaults"
    base = FLAGS.logdir or os.path.join(
        "logs", "learning_curve", re.sub(r"[^A-Za-z0-9_.+-]+", "_", config))
    out = FLAGS.out or os.path.join(base, "learning_curve")
    frames = FLAGS.frames or config_frames()
    lines = references()
    if FLAGS.dry_run:
        for seed in seeds:
            cmd = trainer_command(seed, os.path.join(base, f"seed_{seed}"),
                                  frames)
            print(f"[learning_curve] seed {seed}: {' '.join(cmd[1:])}")
        return 0
    if not FLAGS.plot_only:
        failed = train_seeds(seeds, base, frames, FLAGS.parallel,
                             FLAGS.timeout_s)
        for seed, (code, output) in failed.items():
            where = f" (its output: {output})" if output else ""
            print(f"error: seed {seed}'s training exited with status "
                  f"{code}{where}", file=sys.stderr)
        if failed:
            code = next(iter(failed.values()))[0]
            return code if code > 0 else 1
    curves = {s: sweep.read_curve(os.path.join(base, f"seed_{s}"))
              for s in seeds}
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    curves_lib.write_csv(curves, out + ".csv")
    title = (f"impala_tf: {FLAGS.level_name}, {config}, "
             f"seed{'s' if len(seeds) > 1 else ''} "
             f"{', '.join(map(str, seeds))}")
    curves_lib.plot(curves, out + ".png", title, lines)
    table, summary = curves_lib.report(curves, thresholds)
    summary.update(level_name=FLAGS.level_name, config=config,
                   frames=frames, logdir=base,
                   references=[list(line) for line in lines])
    print(table)
    print(f"wrote {out}.csv and {out}.png")
    if FLAGS.summary_json:
        with open(FLAGS.summary_json, "w") as f:
            json.dump(summary, f, indent=2)
        print(f"wrote {FLAGS.summary_json}")
    return 0


def define_flags():
    """The trainer's flags plus this tool's (called once, by __main__)."""
    from impala_tf.cli import flags as train_flags  # pylint: disable=g-import-not-at-top
    train_flags.define_train_flags(FLAGS)
    flags.DEFINE_integer("frames", None, "Frames to train each seed for "
                         "(default: the configuration's "
                         "--total_environment_frames).", lower_bound=1)
    flags.DEFINE_list("seeds", ["1"], "Seeds, trained in this order.")
    flags.DEFINE_integer("parallel", 1, "Seeds trained at once (each a "
                         "trainer with its own actors: give each its "
                         "CPUs); above 1, each seed's output goes to "
                         "<logdir>/seed_<s>.log.", lower_bound=1)
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
    flags.DEFINE_bool("suite_references", True, "Also draw the level's "
                      "random and human scores where its suite has them "
                      "(an Atari-57 game, a DMLab-30 level).")
    flags.DEFINE_string("summary_json", None, "Also write the table's "
                        "numbers to this JSON file.")


def main(argv):
    sweep.run_main(run, argv)


if __name__ == "__main__":
    define_flags()
    app.run(main, flags_parser=sweep.flags_parser(FLAGS))
