r"""The paper's Table 2 in one command: 4 off-policy corrections x replay.

  impala-tf ablation --flagfile=configs/table2_ablation.cfg \
      --frames=200000000 --seeds=1,2,3 --logdir=logs/table2

trains every cell of Table 2's grid, the corrections (`--corrections`,
default vtrace, 1step_is, epsilon, none: the paper's rows) without and with
learner-side experience replay (`--replay_proportion`, 0.5 as the paper
unless set above 0, and `--replay_capacity`), each for `--frames` environment frames
with every seed of `--seeds`: run `<logdir>/<correction>_replay<0|1>/
seed_<s>`. The runs train one after another on this machine
(`--parallel=N`: N at a time, each one's output in `<its logdir>.log`), each a
`impala-tf train` with every trainer flag given here (a
`--flagfile`, `--level_name`, ...; flags after a flagfile override it) and,
set per run: --logdir, --seed, --total_environment_frames (the budget; the
learning rate decays over it unless the configuration sets
--learning_rate_decay_frames), --off_policy_correction, --replay_proportion
(0 without replay) and --replay_capacity. Rerunning resumes each run from
its checkpoint and skips the runs already at `--frames` or, with the
trainer's `--stop_at_return`, at that return.

On a cluster: `--print_commands` prints one trainer command line per run
(run K on line K+1), and `--cell=K` trains only run K (an array job's task
index; docs/ABLATION.md). Runs are ordered by correction,
then replay off/on, then seed. `--table_only` only re-reads the logdirs.

Outputs: a table shaped like Table 2 on stdout (rows: corrections; columns:
without / with replay; each cell the final mean return of the last 100
episodes, mean ± std over the seeds, "–" if not run) with the paper's DMLab
numbers beside it (the reference "impala_table_2" of the suite that has it,
DMLab-30's: the level's task if it is one of the paper's five, else all
five), `<out>.csv` (one row per run: final
return, frames, mean clipped rho on fresh and replayed trajectories where
progress.jsonl has them) and `<out>.png` (bars without/with replay per
correction, each seed a dot). Bad input: one `error:` sentence, exit 2.
"""

import collections
import csv
import math
import os
import re
import shlex
import statistics
import sys

from absl import app
from absl import flags

from impala_tf.cli import flags as train_flags
from impala_tf.envs import suites
from impala_tf.errors import UsageError
from impala_tf.runtime import sweep

FLAGS = flags.FLAGS
CORRECTIONS = ("vtrace", "1step_is", "epsilon", "none")  # Table 2's rows.
LABELS = {"vtrace": "V-trace", "1step_is": "1-step IS",
          "epsilon": "ε-correction", "none": "No correction"}
PAPER_REPLAY_PROPORTION = 0.5  # Section 5.2.2: 50% of each batch replayed.
# Trainer flags set per run (never passed through from this command line).
SET_PER_RUN = ("logdir", "seed", "total_environment_frames",
               "off_policy_correction", "replay_proportion",
               "replay_capacity")
# This tool's own flags (never passed to the trainer).
OWN_FLAGS = ("frames", "seeds", "corrections", "replay", "cell",
             "parallel", "print_commands", "table_only", "out")
RHO_KEYS = ("mean_clipped_rho_fresh", "mean_clipped_rho_replayed")
CSV_COLUMNS = ("cell", "correction", "replay", "seed", "frames",
               "final_return") + RHO_KEYS + ("logdir",)

# One training run of the grid; `index` is its --cell number.
Run = collections.namedtuple("Run", ["index", "correction", "replay", "seed"])


def grid(corrections, replays, seeds):
    """The runs, ordered by correction, replay (False before True), seed.

    Args: corrections: --off_policy_correction values; replays: bools;
    seeds: ints. Returns a list of `Run`, `index` counting from 0.
    """
    cells = [(c, r, s) for c in corrections for r in sorted(set(replays))
             for s in seeds]
    return [Run(i, *cell) for i, cell in enumerate(cells)]


def run_logdir(base, run):
    """`<base>/<correction>_replay<0|1>/seed_<seed>`."""
    return os.path.join(base, f"{run.correction}_replay{int(run.replay)}",
                        f"seed_{run.seed}")


def command(run, trainer_flags, base, frames, replay_proportion,
            replay_capacity, python=sys.executable):
    """The argv that trains `run` for `frames` frames in its logdir.

    `trainer_flags`: `--name=value` strings passed to every run (none of
    SET_PER_RUN). `replay_proportion`: the with-replay share; runs
    without replay get --replay_proportion=0, runs with it also
    --replay_capacity=`replay_capacity`.
    """
    argv = [python, "-m", "impala_tf.cli.experiment"] + list(trainer_flags) + [
        f"--logdir={run_logdir(base, run)}", f"--seed={run.seed}",
        f"--total_environment_frames={frames}",
        f"--off_policy_correction={run.correction}"]
    argv.append(f"--replay_proportion={replay_proportion if run.replay else 0}")
    if run.replay:
        argv.append(f"--replay_capacity={replay_capacity}")
    return argv


def read_results(base, runs):
    """{run: result or None (no progress.jsonl yet)} for the runs of a grid.

    A result is a dict: frames (int, the last record's), final_return (the
    last record's mean return of the last 100 episodes; None before any
    episode ended) and, for each of RHO_KEYS, its mean over the run's
    records that have a finite value (None if none do).
    """
    out = {}
    for run in runs:
        logdir = run_logdir(base, run)
        if not os.path.exists(os.path.join(logdir, "progress.jsonl")):
            out[run] = None
            continue
        rows = sweep.read_curve(logdir, extra_keys=RHO_KEYS)
        returns = [r[sweep.RETURN_KEY] for r in rows
                   if r[sweep.RETURN_KEY] is not None]
        result = {"frames": rows[-1]["env_frames"] if rows else 0,
                  "final_return": returns[-1] if returns else None}
        for key in RHO_KEYS:
            values = [r[key] for r in rows
                      if r[key] is not None and math.isfinite(r[key])]
            result[key] = sum(values) / len(values) if values else None
        out[run] = result
    return out


def cell_returns(results, correction, replay):
    """The final returns of the seeds of one table cell that have one."""
    return [r["final_return"] for run, r in results.items()
            if run.correction == correction and run.replay == replay
            and r is not None and r["final_return"] is not None]


def _fmt_cell(returns, num_seeds):
    if not returns:
        return "–"
    text = f"{statistics.mean(returns):.1f}"
    if len(returns) > 1:
        text += f" ± {statistics.stdev(returns):.1f}"
    if len(returns) < num_seeds:
        text += f" ({len(returns)}/{num_seeds} seeds)"
    return text


def paper_table_2():
    """The paper's Table 2, {(correction, with replay): {level: return}},
    from the suite plug-in that has it (reference "impala_table_2"); {}
    where none does."""
    for suite in suites.load().values():
        if "impala_table_2" in suite.reference:
            return suite.reference["impala_table_2"]
    return {}


def paper_levels(level_name):
    """The paper's Table 2 tasks to show beside a level: its own if it is
    one of the five (with or without a `dmlab/` prefix), else all five
    (none without the table)."""
    table = paper_table_2()
    all_levels = tuple(next(iter(table.values()))) if table else ()
    name = level_name.rsplit("/", 1)[-1]
    return (name,) if name in all_levels else all_levels


def format_table(results, level_name, frames, seeds):
    """Table 2's shape as text: a row per correction of CORRECTIONS, our
    final returns without and with replay, then the paper's numbers
    ("without → with replay") for `paper_levels(level_name)`."""
    levels = paper_levels(level_name)
    header = ["correction", "without replay", "with replay"] + list(levels)
    rows = [header]
    for c in CORRECTIONS:
        paper = paper_table_2()
        rows.append([LABELS[c]] + [
            _fmt_cell(cell_returns(results, c, r), len(seeds))
            for r in (False, True)] + [
                f"{paper[(c, False)][l]:.1f} → {paper[(c, True)][l]:.1f}"
                for l in levels])
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(w) if i == 0 else cell.rjust(w)
                       for i, (cell, w) in enumerate(zip(row, widths)))
             for row in rows]
    groups = (" " * (widths[0] + 2)
              + "impala_tf".center(widths[1] + 2 + widths[2])
              + "  paper, DMLab (without → with replay)")
    frames_text = f"{frames:,} frames per run, " if frames else ""
    title = (f"Off-policy corrections without and with experience replay "
             f"(paper Table 2) on {level_name}: final mean return of the "
             f"last 100 episodes, {frames_text}"
             f"seed{'s' if len(seeds) > 1 else ''} "
             f"{', '.join(map(str, seeds))}"
             + (" (mean ± std over seeds)" if len(seeds) > 1 else ""))
    return "\n".join([title, groups] + lines)


def write_csv(results, base, path):
    """One row per run of `results` (CSV_COLUMNS; blank: not run / none)."""
    def fmt(value):
        return "" if value is None else (f"{value:.4f}"
                                         if isinstance(value, float)
                                         else str(value))
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(CSV_COLUMNS)
        for run, r in results.items():
            r = r or {}
            w.writerow([run.index, run.correction, int(run.replay), run.seed,
                        fmt(r.get("frames")), fmt(r.get("final_return"))]
                       + [fmt(r.get(k)) for k in RHO_KEYS]
                       + [run_logdir(base, run)])


def plot(results, corrections, path, title):
    """Grouped bars to `path` (PNG); returns the matplotlib figure.

    x: `corrections`; per correction a bar without and one with replay
    (height: mean final return over the seeds; no bar where no seed has a
    return), each seed's final return a black dot on its bar.
    """
    import matplotlib  # pylint: disable=import-outside-toplevel
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # pylint: disable=import-outside-toplevel
    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    width = 0.38
    dots_label = "final return of each seed"
    for j, replay in enumerate((False, True)):
        xs, heights = [], []
        for i, c in enumerate(corrections):
            returns = cell_returns(results, c, replay)
            if not returns:
                continue
            x = i + (j - 0.5) * width
            xs.append(x)
            heights.append(statistics.mean(returns))
            ax.plot([x] * len(returns), returns, "o", color="black",
                    markersize=4, label=dots_label)
            dots_label = None
        ax.bar(xs, heights, width, color=f"C{j}", alpha=0.8,
               label="with replay" if replay else "without replay")
    ax.axhline(0, color="grey", linewidth=0.8)
    ax.set_xticks(range(len(corrections)))
    ax.set_xticklabels([LABELS[c] for c in corrections])
    ax.set_ylabel("final mean return (last 100 episodes)")
    ax.set_title(title, fontsize="medium")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(loc="best", fontsize="small")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    return fig


def _replay_settings():
    """(with-replay proportion, capacity). A proportion of 0 (the trainer's
    default, or a configuration's "off" such as table2_ablation.cfg's)
    means the paper's 0.5."""
    return (FLAGS.replay_proportion or PAPER_REPLAY_PROPORTION,
            FLAGS.replay_capacity)


def run(argv):
    """The command line's work; returns the exit status."""
    del argv
    corrections = sweep.parse_list(FLAGS.corrections, "corrections")
    unknown = [c for c in corrections if c not in CORRECTIONS]
    if unknown:
        raise UsageError(f"unknown correction {unknown[0]!r} in "
                         f"--corrections; choose from {', '.join(CORRECTIONS)}")
    seeds = sweep.parse_list(FLAGS.seeds, "seeds", int)
    replays = {"off": [False], "on": [True], "both": [False, True]}[
        FLAGS.replay]
    proportion, capacity = _replay_settings()
    if FLAGS.frames is None and not FLAGS.table_only:
        raise UsageError("--frames is required: the frame budget of each run")
    base = FLAGS.logdir or os.path.join(
        "logs", "ablation", re.sub(r"[^A-Za-z0-9_.-]+", "_",
                                   FLAGS.level_name))
    runs = grid(corrections, replays, seeds)
    todo = runs
    if FLAGS.cell is not None:
        if FLAGS.cell >= len(runs):
            raise UsageError(f"--cell={FLAGS.cell} but the grid has "
                             f"{len(runs)} runs (0 to {len(runs) - 1})")
        todo = [runs[FLAGS.cell]]
    passed = sweep.passed_flags(FLAGS, exclude=SET_PER_RUN + OWN_FLAGS)

    def command_of(r):
        return command(r, passed, base, FLAGS.frames, proportion, capacity)

    if FLAGS.print_commands:
        for r in todo:
            print(shlex.join(["python"] + command_of(r)[1:]))
        return 0
    if not FLAGS.table_only:
        code = train_runs(todo, base, command_of, FLAGS.parallel)
        if code:
            return code
        if FLAGS.cell is not None:
            print(f"[ablation] cell {FLAGS.cell} done; once every cell is, "
                  "draw the table with --table_only", flush=True)
            return 0
    results = read_results(base, runs)
    if not any(results.values()):
        raise UsageError(f"no run of this grid has a progress.jsonl under "
                         f"{base}; train first or check --logdir")
    out = FLAGS.out or os.path.join(base, "ablation")
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    table = format_table(results, FLAGS.level_name, FLAGS.frames, seeds)
    write_csv(results, base, out + ".csv")
    plot(results, corrections, out + ".png",
         f"impala_tf: {FLAGS.level_name}"
         + (f", {FLAGS.frames:,} frames per run" if FLAGS.frames else ""))
    print(table)
    print(f"wrote {out}.csv and {out}.png")
    return 0


def train_runs(todo, base, command_of, parallel):
    """Trains the runs of `todo` not yet done, `parallel` at a time (each
    one's output in `<its logdir>.log` when more than one); returns 0 once
    all are done, else an exit status with one `error:` line per run that
    failed or was stopped before its end."""
    name = {r: (f"cell {r.index} ({r.correction}, replay "
                f"{'on' if r.replay else 'off'}, seed {r.seed})")
            for r in todo}
    jobs = []
    for r in todo:
        logdir = run_logdir(base, r)
        if sweep.done(logdir, FLAGS.frames, FLAGS.stop_at_return):
            print(f"[ablation] {name[r]}: done in {logdir} (at "
                  f"{sweep.frames_done(logdir):,} of {FLAGS.frames:,} "
                  "frames)", flush=True)
            continue
        output = None
        if parallel > 1:
            os.makedirs(os.path.dirname(logdir), exist_ok=True)
            output = logdir + ".log"
        jobs.append((r, sweep.Job(command_of(r), f"[ablation] {name[r]}:",
                                  output)))
    codes = sweep.train_all([job for _, job in jobs], parallel)
    status = 0
    for (r, job), code in zip(jobs, codes):
        if code is None:
            continue
        if code != 0:
            where = f" (its output: {job.output})" if job.output else ""
            print(f"error: {name[r]}'s training exited with status "
                  f"{code}{where}", file=sys.stderr)
            status = status or (code if code > 0 else 1)
        elif not sweep.done(run_logdir(base, r), FLAGS.frames,
                            FLAGS.stop_at_return):
            # Stopped by a signal: not a result.
            done = sweep.frames_done(run_logdir(base, r))
            print(f"error: {name[r]} stopped at {done:,} of "
                  f"{FLAGS.frames:,} frames; run the same command again "
                  "to resume it", file=sys.stderr)
            status = status or 1
    return status


def define_flags(flag_values=FLAGS):
    """The trainer's flags plus this tool's, in `flag_values`; returns
    it."""
    train_flags.define_train_flags(flag_values)
    kw = {"flag_values": flag_values}
    flags.DEFINE_integer("frames", None, "Environment frames of each run "
                         "(its --total_environment_frames).", lower_bound=1,
                         **kw)
    flags.DEFINE_list("seeds", ["1"], "Seeds; every cell trains each.", **kw)
    flags.DEFINE_list("corrections", list(CORRECTIONS),
                      "Off-policy corrections (Table 2's rows).", **kw)
    flags.DEFINE_enum("replay", "both", ["both", "off", "on"],
                      "Which half of the table to train: without replay, "
                      "with, or both.", **kw)
    flags.DEFINE_integer("cell", None, "Train only run K (line K+1 of "
                         "--print_commands): a cluster array's task index.",
                         lower_bound=0, **kw)
    flags.DEFINE_integer("parallel", 1, "Runs trained at once (each a "
                         "trainer with its own actors: give each its "
                         "CPUs); above 1, each run's output goes to "
                         "<its logdir>.log.", lower_bound=1, **kw)
    flags.DEFINE_bool("print_commands", False, "Only print each run's "
                      "trainer command line, one per line.", **kw)
    flags.DEFINE_bool("table_only", False, "Only re-read the logdirs and "
                      "redraw the table, CSV and plot.", **kw)
    flags.DEFINE_string("out", None, "Output prefix of .csv and .png "
                        "(default: <logdir>/ablation).", **kw)
    return flag_values


def main(argv):
    sweep.run_main(run, argv)


if __name__ == "__main__":
    define_flags()
    app.run(main, flags_parser=sweep.flags_parser(FLAGS))
