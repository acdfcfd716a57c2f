"""Training runs as child processes, one after another, and their curves.

Shared by the tools that train a grid of runs on one machine
(`benchmarks.learning_curve`: seeds; `impala_tf.cli.ablation`: corrections x
replay x seeds):

* `passed_flags(flag_values, exclude)`: the trainer flags given on this
  command line or in its flagfiles, as `--name=value` strings, to pass on.
* `train(command, prefix, timeout_s)`: runs one trainer command line to its
  end (resuming is the trainer's: same logdir, same command); on a timeout
  or when this process is stopped, SIGTERM (the trainer checkpoints), then
  SIGKILL to its process group (`processes.stop`).
* `train_all(jobs, parallel, timeout_s)`: the same for several command
  lines, up to `parallel` at once, each one's output to its own file.
* `read_curve(logdir)`, `frames_done(logdir)`, `done(logdir, frames,
  stop_at_return)`: a run's progress.jsonl read
  back, a resumed run's redone records replacing the ones they redo.
* `parse_list`, `flags_parser`, `run_main`: the tools' command-line
  plumbing (one `error:` sentence and exit status 2 for bad input,
  `errors.UsageError`).

No TensorFlow: reading and launching need none.
"""

import collections
import functools
import os
import signal
import subprocess
import sys
import time

from absl import flags

from impala_tf import errors
from impala_tf.errors import UsageError
from impala_tf.runtime import processes
from impala_tf.runtime import progress

RETURN_KEY = "episode_return_mean"
STOP_TIMEOUT_S = 120  # SIGTERM to SIGKILL: time for the trainer's checkpoint.
POLL_S = 0.5  # How often `train_all` looks at the trainers it runs.

# One trainer for `train_all`: its argv, the prefix of the lines logged about
# it, and the file its stdout and stderr are appended to (None: this
# process's own).
Job = collections.namedtuple("Job", ["command", "prefix", "output"])


def passed_flags(flag_values, exclude=()):
    """`--name=value` for each flag of `flag_values` (absl FlagValues)
    defined by an impala_tf module and set on the command line or in a
    flagfile, except those named in `exclude`; in definition order."""
    out = []
    for module, module_flags in flag_values.flags_by_module_dict().items():
        if not module.startswith("impala_tf."):
            continue
        for flag in module_flags:
            if flag.present and flag.name not in exclude:
                out.append(flag.serialize())
    return out


def read_curve(logdir, extra_keys=()):
    """One run's curve from `<logdir>/progress.jsonl`.

    Returns a list of dicts with keys env_frames (int), elapsed_s, fps
    (float), episode_return_mean (float, or None before the first finished
    episode), episodes (int: how many had finished) and each of
    `extra_keys` (the record's value or None), with
    env_frames increasing. A resumed run appends to the file from its
    checkpoint's frame count (and restarts elapsed_s at 0): the records it
    redoes replace those logged after that checkpoint. The record a clean
    stop writes right after a periodic one (the same frames, later in the
    same process) replaces that one but keeps its fps, the rate over the
    last interval that had one (ProgressLogger writes that fps in the stop's
    record; logs written by earlier versions have 0 there). A half-written
    last line is skipped. Raises UsageError if there is no file or a line
    is not JSON.
    """
    path = progress.path(logdir)
    if not os.path.exists(path):
        raise UsageError(f"{path} does not exist; train first or check "
                         "--logdir and --seeds")
    try:
        records = progress.read_records(logdir)
    except ValueError as e:
        raise UsageError(str(e)) from None
    rows = []
    for r in records:
        if "env_frames" not in r:
            continue
        frames, elapsed = int(r["env_frames"]), float(r.get("elapsed_s", 0.0))
        fps = float(r.get("fps", 0.0))
        if (rows and rows[-1]["env_frames"] == frames
                and rows[-1]["elapsed_s"] < elapsed):
            fps = rows[-1]["fps"]  # A stop's record: no frames since.
        while rows and rows[-1]["env_frames"] >= frames:
            rows.pop()  # Logged after the checkpoint this run resumed.
        row = {"env_frames": frames, "elapsed_s": elapsed, "fps": fps,
               RETURN_KEY: r.get(RETURN_KEY),
               "episodes": int(r.get("episodes", 0))}
        row.update((k, r.get(k)) for k in extra_keys)
        rows.append(row)
    return rows


def _last_row(logdir, extra_keys=()):
    """The last row of `read_curve`, or None: no progress file or record
    yet."""
    if not os.path.exists(progress.path(logdir)):
        return None
    curve = read_curve(logdir, extra_keys)
    return curve[-1] if curve else None


def frames_done(logdir):
    """The frame count of a run's last progress record (0: none yet)."""
    last = _last_row(logdir)
    return last["env_frames"] if last else 0


def done(logdir, frames, stop_at_return=None):
    """Whether a run needs no more training: its last progress record is at
    `frames`, or its mean return reached `stop_at_return` (the trainer's
    `--stop_at_return`: `progress.reached_return`)."""
    last = _last_row(logdir, extra_keys=("episodes",))
    return last is not None and (
        last["env_frames"] >= frames
        or progress.reached_return(last, stop_at_return))


def train(command, prefix, timeout_s=0, cwd=None, log=print):
    """Runs `command` (argv of a trainer) in its own process group until it
    exits; returns its exit status (0 when `timeout_s` > 0 ran out and the
    trainer was stopped cleanly). It runs in `cwd` (default: this
    process's), so relative paths mean the same to both. Logs `<prefix>
    <command line>`. If this process dies, even by SIGKILL, the trainer gets SIGTERM (Linux)."""
    return train_all([Job(command, prefix, None)], 1, timeout_s, cwd,
                     log)[0]


def train_all(jobs, parallel=1, timeout_s=0, cwd=None, log=print):
    """Runs the `Job`s' trainers, up to `parallel` at once, in order.

    Each runs in its own process group, started by this thread (the
    kernel's parent for PR_SET_PDEATHSIG: if this process dies, even by
    SIGKILL, its trainers get SIGTERM), in `cwd`, with its output appended
    to `job.output` if set. A trainer still running `timeout_s` (> 0)
    seconds after it started gets SIGTERM (it checkpoints) and counts as
    exit status 0. Once one exits with another status no further job
    starts; those running go on to their end. If this process is stopped
    (SIGTERM made SystemExit by `run_main`, Ctrl-C), every running
    trainer gets SIGTERM, then SIGKILL to its group after STOP_TIMEOUT_S.

    Returns a list, one entry per job: its exit status, or None for a job
    that never started.
    """
    codes = [None] * len(jobs)
    pending = list(range(len(jobs)))
    running = {}  # index -> (Popen, deadline or None)
    try:
        while running or (pending and not any(codes)):
            while pending and len(running) < parallel and not any(codes):
                i = pending.pop(0)
                running[i] = (_start(jobs[i], cwd, log),
                              time.monotonic() + timeout_s if timeout_s
                              else None)
            for i, (proc, deadline) in list(running.items()):
                if proc.poll() is None and not (
                        deadline and time.monotonic() >= deadline):
                    continue
                if proc.returncode is None:
                    log(f"{jobs[i].prefix} --timeout_s={timeout_s:g} "
                        "reached; stopping it (it checkpoints)", flush=True)
                    processes.stop(proc, STOP_TIMEOUT_S, group=True)
                    codes[i] = 0
                else:
                    codes[i] = proc.returncode
                    # Actors its trainer left behind, if any.
                    processes.kill(proc, group=True)
                if len(jobs) > 1:
                    log(f"{jobs[i].prefix} ended with status {codes[i]}",
                        flush=True)
                del running[i]
            if running:
                time.sleep(POLL_S)
    finally:
        # Only when this process is being stopped.
        procs = [proc for proc, _ in running.values()]
        processes.stop(procs, STOP_TIMEOUT_S, group=True)
    return codes


def _start(job, cwd, log):
    """Popen of one `Job`, in a new session, dying with this thread."""
    where = f" (output: {job.output})" if job.output else ""
    log(f"{job.prefix} {' '.join(job.command[1:])}{where}", flush=True)
    out = open(job.output, "ab") if job.output else None  # pylint: disable=consider-using-with
    try:
        return subprocess.Popen(
            job.command, cwd=cwd, start_new_session=True, stdout=out,
            stderr=subprocess.STDOUT if out else None,
            preexec_fn=functools.partial(processes.die_with_parent,
                                         os.getpid()))
    finally:
        if out is not None:
            out.close()  # The child holds its own descriptor.


def parse_list(values, name, kind=str):
    """A list flag's values as `kind`; UsageError if one does not convert,
    the list is empty or lists a value twice. `values` may also be the
    comma-separated text itself (empty items dropped), as argparse gives
    it."""
    if isinstance(values, str):
        values = [v for v in values.split(",") if v]
    try:
        items = [kind(v) for v in values]
    except ValueError:
        raise UsageError(f"--{name} must be a comma-separated list of "
                         f"{kind.__name__}s, got {','.join(values)!r}"
                         ) from None
    if not items:
        raise UsageError(f"--{name} is empty")
    if len(set(items)) < len(items):
        raise UsageError(f"--{name} lists a value twice: {','.join(values)}")
    return items


def flags_parser(flag_values):
    """An absl `flags_parser` for `app.run`: a bad flag is one `error:`
    sentence and exit status 2."""
    def parse(argv):
        try:
            return flag_values(argv)
        except flags.Error as e:
            errors.fail(errors.first_line(e))
    return parse


def run_main(run, argv):
    """The body of a tool's absl `main`: refuses leftover arguments, makes
    SIGTERM a SystemExit (so `train` stops the run it started), and exits
    with `run(sys.argv)`'s status, or 2 with one sentence for a
    UsageError. `run` gets the whole command line (its flagfiles too)."""
    if len(argv) > 1:
        errors.fail(f"unexpected arguments {' '.join(argv[1:])!r}")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        sys.exit(run(sys.argv))
    except UsageError as e:
        errors.fail(str(e))
