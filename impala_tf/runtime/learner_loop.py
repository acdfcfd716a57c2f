"""The learner's loop: take a batch, step, log, checkpoint, until done.

`LearnerLoop.run()` (or `start()` for a background thread) repeats:

  1. take the next batch from a `transport.BatchSource` ([B, T+1, ...]);
  2. run the step function on it (`make_step`: the update, then the
     weight publication, one `tf.function`);
  3. hand the step's numbers (with, under replay, the buffer's size) to
     the progress logger, report skipped
     non-finite updates, log when due;
  4. run the `hooks` (population-based training's, `pbt_member`);
  5. save a checkpoint every `checkpoint_interval_s` (learner 0 only);

until the frame target, a mean return of `stop_at_return` in a progress
record, `stop()`, or the end of the batch source.

Stopping. `stop()` (any thread) ends the loop after the current step and
calls `on_stop` (which closes the batch source and the actors' queue, so a
step waiting for a batch ends too). `on_signal` is a SIGINT/SIGTERM
handler: a single learner stops; one of K synchronous learners
(`distributed.LearnerCluster`) votes, and all leave after the same step
(`'stop_votes'` in the step's output), or this one alone after 60 s or a
second signal. After the loop ends, `error` is None for a clean stop (the
target, a stop, the source closed) and otherwise the first exception the
loop met; `finish()` saves the last checkpoint and writes the last record.
"""

import signal
import threading
import time

import numpy as np
import tensorflow as tf

from impala_tf.runtime import progress

CLUSTER_STOP_TIMEOUT_S = 60.0


def make_step(learner, jit_compile=False, cluster=None):
    """The step function: callable(batch) -> dict of tensors.

    batch: `types.Trajectory` nest of tensors [B, T+1, ...]. Returns
    `Learner.train_step`'s dict (plus 'stop_votes' with a `cluster`): the
    update (XLA-compiled if `jit_compile`), then the weight publication
    (`Learner.step_function`); synchronous learners step with
    `LearnerCluster.step` in one `tf.function`, without XLA.
    """
    if cluster is not None:
        return tf.function(lambda batch: cluster.step(learner, batch))
    return learner.step_function(jit_compile)


class NonfiniteReporter:
    """One line when updates are skipped as non-finite (at most every 10 s)."""

    def __init__(self, say, start, interval_s=10.0):
        self._say, self._interval = say, interval_s
        self._reported, self._last = start, -float("inf")

    def check(self, out):
        skips = int(out["nonfinite_skips"])
        if skips <= self._reported or (
                time.time() - self._last < self._interval):
            return
        self._say(
            f"[impala] step {int(out['num_steps']):,}: non-finite loss or "
            f"gradient (total_loss={float(out.get('total_loss', np.nan)):.4g},"
            f" grad_norm={float(out['grad_norm']):.4g}); update skipped, "
            f"weights unchanged ({skips} skipped so far, "
            f"{skips - self._reported} since the last report)")
        self._reported, self._last = skips, time.time()


class LearnerLoop:
    """Runs the learner until its frame target or a stop.

    Args:
      learner: the `learner.Learner` (its counters are read).
      step: callable(batch) -> dict of tensors (`make_step`).
      batches: a `transport.BatchSource`.
      logger: a `progress.ProgressLogger`.
      checkpoints: a `checkpoints.Checkpoints`, or None (a learner that does
        not save: not learner 0).
      total_frames: stop once the learner counted this many frames.
      checkpoint_interval_s: seconds between checkpoints.
      on_stop: callable() run once when the loop is asked to stop (closes
        the inputs, so that a step waiting for a batch ends).
      cluster: the `distributed.LearnerCluster` of synchronous learners, or
        None.
      say: callable(str) for one-line events.
      replay: the `replay.ReplayBatchSource` that `batches` reads through,
        or None; its `stats()` join each step's numbers (which rows were
        replayed travels in the batch: the step's 'replayed').
      hooks: callables(out) run after each step with its numpy results
        (`Learner.train_step`'s dict), in the loop's thread between steps,
        so they may change the learner (`pbt_member.PbtHook`).
      stop_at_return: stop (as at the frame target) at the first progress
        record whose mean return over the logger's full window of episodes
        is at least this (`progress.reached_return`); None: never.
        Synchronous learners agree on the step, as for a signal.
    """

    def __init__(self, learner, step, batches, logger, checkpoints,
                 total_frames, checkpoint_interval_s, on_stop=lambda: None,
                 cluster=None, say=print, replay=None, hooks=(),
                 stop_at_return=None):
        self._learner, self._step, self._batches = learner, step, batches
        self._logger, self._checkpoints = logger, checkpoints
        self._total = total_frames
        self._interval = checkpoint_interval_s
        self._on_stop = on_stop
        self._cluster = cluster
        self._say = say
        self._replay = replay
        self._hooks = tuple(hooks)
        self._stop_at_return = stop_at_return
        self._stop = threading.Event()
        self._stop_lock = threading.Lock()
        self._stopped = False
        self._thread = None
        self._nonfinite = NonfiniteReporter(
            say, int(learner.nonfinite_skips.numpy()))
        self.error = None
        self.steps_run = 0  # Steps taken by this process.

    @property
    def stopping(self):
        return self._stop.is_set()

    def _frames(self):
        return int(self._learner.num_frames.numpy())

    def _save(self):
        path = self._checkpoints.save()
        if path:
            self._say(f"[impala] checkpoint {path} at {self._frames():,} "
                      "frames")

    def run(self):
        """The loop, in the calling thread; returns when it ends (see
        `error`)."""
        last_ckpt = time.time()
        try:
            while not self._stop.is_set() and self._frames() < self._total:
                out = self._step(next(self._batches))
                out = {k: v.numpy() for k, v in out.items()}
                if self._replay is not None:
                    out.update(self._replay.stats())
                self._logger.add(out)
                self.steps_run += 1
                self._nonfinite.check(out)
                if self._logger.due() and self._target_reached(
                        self._logger.log()):
                    break
                for hook in self._hooks:
                    hook(out)
                if out.get("stop_votes", 0) > 0:  # All stop after this step.
                    if not self._cluster.stop_requested:
                        self._say("[impala] another learner is stopping; "
                                  "stopping after the same step")
                    break
                if (self._checkpoints is not None
                        and time.time() - last_ckpt >= self._interval):
                    self._save()
                    last_ckpt = time.time()
        except (tf.errors.OutOfRangeError, tf.errors.CancelledError,
                StopIteration):
            pass  # The inputs were closed: a requested stop.
        except tf.errors.OpError as e:
            # A step cut short by closing its inputs; its updates never ran.
            if not self._stop.is_set():
                self.error = e
        except Exception as e:  # pylint: disable=broad-except
            self.error = e
        finally:
            self._stop.set()

    def _target_reached(self, record):
        """After a progress record: whether to stop for `stop_at_return`
        now (True) or, with synchronous learners, after the step they all
        agree on (a vote, as for a signal; False here)."""
        if not progress.reached_return(record, self._stop_at_return):
            return False
        if self._cluster is not None and self._cluster.stop_requested:
            return False  # Already voted: the vote ends the loop.
        self._say(f"[impala] mean return {record['episode_return_mean']:.2f}"
                  f" over the last {progress.RETURN_WINDOW} episodes reached"
                  f" --stop_at_return={self._stop_at_return:g} at "
                  f"{record['env_frames']:,} frames: stopping")
        if self._cluster is not None:
            self._cluster.request_stop()
            return False
        return True

    def start(self):
        """Runs the loop in a background thread named 'learner'."""
        self._thread = threading.Thread(target=self.run, name="learner",
                                        daemon=True)
        self._thread.start()

    def is_alive(self):
        return self._thread is not None and self._thread.is_alive()

    def join(self, timeout=None):
        if self._thread is not None:
            self._thread.join(timeout)

    def stop(self):
        """Stops after the current step and closes the inputs (idempotent)."""
        self._stop.set()
        with self._stop_lock:
            if self._stopped:
                return
            self._stopped = True
        self._on_stop()

    def on_signal(self, signum, _frame=None):
        """SIGINT/SIGTERM handler: stop (agreed among synchronous
        learners), then save a checkpoint (`finish`)."""
        name = signal.Signals(signum).name
        if self._stop.is_set():
            self._say(f"[impala] {name}: already stopping")
            return
        self._say(f"[impala] {name}: stopping after the current step and "
                  "saving a checkpoint")
        if self._cluster is not None and not self._cluster.stop_requested:
            # All learners stop after the same step (a second signal, or
            # 60 s without a step, stops this one alone).
            self._cluster.request_stop()
            timer = threading.Timer(CLUSTER_STOP_TIMEOUT_S, self.stop)
            timer.daemon = True
            timer.start()
            return
        self.stop()

    def finish(self):
        """After the loop: raises its error, else saves the last checkpoint
        and writes the last record (the run's figures); returns that record
        (the previous one if this process took no step)."""
        if self.error is not None:
            raise self.error
        path = self._checkpoints.save() if self._checkpoints else None
        # No step in this run (stopped while starting): no record claiming 0.
        record = (self._logger.log(final=True) if self.steps_run
                  else self._logger.last_record)
        self._logger.close()
        if path:
            self._say(f"[impala] saved {path} at {self._frames():,} frames")
        return record
