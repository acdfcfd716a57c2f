"""`learner_loop.LearnerLoop`: run, stop, errors, the last record.

A stand-in learner (its counters only) and step, `testing.ListBatches` or a
blocking source, a real `progress.ProgressLogger`; no TensorFlow server.
"""

import io
import signal
import threading

import numpy as np
import pytest
import tensorflow as tf

from impala_tf.runtime import learner_loop
from impala_tf.runtime import progress
from impala_tf import testing
from impala_tf import transport

FRAMES_PER_STEP = 10


class _Learner:
    def __init__(self):
        self.num_frames = tf.Variable(0, dtype=tf.int64)
        self.num_steps = tf.Variable(0, dtype=tf.int64)
        self.nonfinite_skips = tf.Variable(0, dtype=tf.int64)


def _step_of(learner, fail_at=None, stop_votes=None, returns=None):
    """returns: callable(step number) -> the return of the 6 games ending
    in that step's [T=3, B=2] batch; None: no game ends."""
    def step(batch):
        steps = int(learner.num_steps.numpy()) + 1
        if steps == fail_at:
            raise ValueError("deliberate failure in the step")
        learner.num_steps.assign(steps)
        learner.num_frames.assign_add(FRAMES_PER_STEP)
        out = {"num_frames": learner.num_frames.read_value(),
               "num_steps": learner.num_steps.read_value(),
               "nonfinite_skips": learner.nonfinite_skips.read_value(),
               "total_loss": tf.constant(float(batch)),
               "grad_norm": tf.constant(1.0),
               "policy_lag": tf.zeros([2]),
               "game_over": tf.fill([3, 2], returns is not None),
               "episode_return": tf.fill(
                   [3, 2], float(returns(steps)) if returns else 0.0),
               "episode_step": tf.zeros([3, 2], tf.int32),
               "level_id": tf.zeros([2], tf.int32)}
        if stop_votes is not None:
            out["stop_votes"] = tf.constant(stop_votes(steps))
        return out
    return step


class _Saves:
    def __init__(self):
        self.saved = 0

    def save(self):
        self.saved += 1
        return f"ckpt-{self.saved}"


class _Blocking(transport.BatchSource):
    """Batches of 1.0 until closed; blocks like a source waiting for
    actors once `limit` were taken."""

    def __init__(self, limit):
        self._limit, self.taken = limit, 0
        self._closed = threading.Event()
        self.taken_enough = threading.Event()
        self.closes = 0

    def __next__(self):
        if self.taken >= self._limit:
            self.taken_enough.set()
            self._closed.wait(60)
        if self._closed.is_set():
            raise StopIteration
        self.taken += 1
        return 1.0

    def close(self):
        self.closes += 1
        self._closed.set()


def _loop(tmp_path, batches, learner, step, total=50, saves=None,
          on_stop=lambda: None, cluster=None, lines=None, interval_s=3600,
          stop_at_return=None):
    console = io.StringIO()
    logger = progress.ProgressLogger(str(tmp_path), ["level"], 1, total,
                                     interval_s=interval_s, console=console)
    loop = learner_loop.LearnerLoop(
        learner, step, batches, logger, saves, total,
        checkpoint_interval_s=3600, on_stop=on_stop, cluster=cluster,
        say=(lines if lines is not None else []).append,
        stop_at_return=stop_at_return)
    return loop, console


def test_runs_to_the_frame_target_and_ends_with_the_runs_figures(tmp_path):
    learner, saves = _Learner(), _Saves()
    loop, console = _loop(tmp_path, testing.ListBatches([2.0] * 20),
                          learner, _step_of(learner), saves=saves)
    loop.run()
    assert loop.error is None and loop.steps_run == 5
    record = loop.finish()
    assert record["env_frames"] == 50 and saves.saved == 1
    last = console.getvalue().strip().splitlines()[-1]
    assert "frames 50 " in last and "over the run" in last, last
    assert "loss 2" in last and "loss nan" not in last, last


def test_a_source_that_ends_is_a_clean_stop(tmp_path):
    learner = _Learner()
    loop, _ = _loop(tmp_path, testing.ListBatches([1.0, 1.0]), learner,
                    _step_of(learner))
    loop.run()
    assert loop.error is None and loop.steps_run == 2
    assert int(learner.num_frames.numpy()) == 20


def test_stop_from_another_thread_closes_the_inputs_once(tmp_path):
    learner = _Learner()
    source = _Blocking(limit=3)
    loop, _ = _loop(tmp_path, source, learner, _step_of(learner),
                    total=10 ** 9, on_stop=source.close)
    loop.start()
    assert source.taken_enough.wait(60)  # Waiting for a 4th batch.
    loop.stop()
    loop.stop()
    loop.join(60)
    assert not loop.is_alive() and loop.error is None
    assert loop.steps_run == 3 and source.closes == 1


def test_the_first_error_is_kept_and_raised_by_finish(tmp_path):
    learner, saves = _Learner(), _Saves()
    loop, _ = _loop(tmp_path, testing.ListBatches([1.0] * 9), learner,
                    _step_of(learner, fail_at=3), saves=saves)
    loop.run()
    assert isinstance(loop.error, ValueError) and loop.steps_run == 2
    with pytest.raises(ValueError, match="deliberate"):
        loop.finish()
    assert saves.saved == 0  # Nothing is saved after a failure.


def test_a_signal_stops_a_single_learner(tmp_path):
    learner, lines, stops = _Learner(), [], []
    loop, _ = _loop(tmp_path, testing.ListBatches([1.0] * 9), learner,
                    _step_of(learner), on_stop=lambda: stops.append(1),
                    lines=lines)
    loop.on_signal(signal.SIGTERM)
    assert "SIGTERM: stopping after the current step" in lines[-1]
    assert stops == [1] and loop.stopping
    loop.on_signal(signal.SIGINT)
    assert "already stopping" in lines[-1]
    loop.run()
    assert loop.steps_run == 0 and loop.error is None


class _Cluster:
    stop_requested = False

    def request_stop(self):
        self.stop_requested = True


def test_synchronous_learners_vote_and_stop_after_the_same_step(tmp_path):
    learner, lines, cluster = _Learner(), [], _Cluster()
    loop, _ = _loop(tmp_path, testing.ListBatches([1.0] * 9), learner,
                    _step_of(learner, stop_votes=lambda s: float(s >= 2)),
                    cluster=cluster, lines=lines)
    loop.run()
    assert loop.steps_run == 2 and loop.error is None
    assert "another learner is stopping" in lines[-1]
    # A signal here votes instead of stopping at once.
    loop2, _ = _loop(tmp_path, testing.ListBatches([]), learner,
                     _step_of(learner), cluster=_Cluster(), lines=lines)
    loop2.on_signal(signal.SIGINT)
    assert not loop2.stopping


def test_stops_once_the_last_100_games_reach_the_target_return(tmp_path):
    """Six games end per step, step s's with return s: the mean of the
    last 100 first reaches 18 at step 26 (the games of steps 11-26 and four
    of step 10: (4*10 + 6*(11+...+26)) / 100 = 18.16; at step 25, 17.16)."""
    learner, lines, saves = _Learner(), [], _Saves()
    loop, _ = _loop(tmp_path, testing.ListBatches([1.0] * 100), learner,
                    _step_of(learner, returns=lambda s: s), total=10 ** 9,
                    saves=saves, lines=lines, interval_s=0,
                    stop_at_return=18)
    loop.run()
    assert loop.error is None and loop.steps_run == 26
    assert lines == ["[impala] mean return 18.16 over the last 100 episodes "
                     "reached --stop_at_return=18 at 260 frames: stopping"]
    record = loop.finish()
    assert record["episode_return_mean"] == pytest.approx(18.16)
    assert saves.saved == 1  # Saved as at the frame target.


def test_a_high_mean_of_too_few_games_does_not_stop(tmp_path):
    learner = _Learner()
    loop, _ = _loop(tmp_path, testing.ListBatches([1.0] * 10), learner,
                    _step_of(learner, returns=lambda s: 21), total=10 ** 9,
                    interval_s=0, stop_at_return=18)
    loop.run()  # 60 games of 21 by the end of the source: not 100.
    assert loop.steps_run == 10


def test_synchronous_learners_vote_to_stop_at_the_target(tmp_path):
    learner, lines, cluster = _Learner(), [], _Cluster()
    votes = lambda s: float(cluster.stop_requested)
    loop, _ = _loop(tmp_path, testing.ListBatches([1.0] * 100), learner,
                    _step_of(learner, returns=lambda s: s,
                             stop_votes=votes),
                    total=10 ** 9, cluster=cluster, lines=lines,
                    interval_s=0, stop_at_return=18)
    loop.run()
    assert cluster.stop_requested
    assert loop.steps_run == 27  # The vote ends the next step.
    assert sum("reached --stop_at_return" in line for line in lines) == 1


def test_make_step_is_the_learners_step_or_the_clusters():
    class Learner:
        def step_function(self, jit_compile):
            return lambda batch: {"x": batch * 2, "jit": jit_compile}

    class Cluster:
        def step(self, learner, batch):
            return {"x": batch * 3, "stop_votes": tf.constant(0.0)}

    out = learner_loop.make_step(Learner(), jit_compile=True)(3.0)
    assert out == {"x": 6.0, "jit": True}
    step = learner_loop.make_step(Learner(), cluster=Cluster())
    np.testing.assert_allclose(step(tf.constant(3.0))["x"], 9.0)


def test_nonfinite_reporter_names_the_step_and_is_rate_limited():
    lines = []
    reporter = learner_loop.NonfiniteReporter(lines.append, 0)
    reporter.check({"nonfinite_skips": 1, "num_steps": 7,
                    "total_loss": np.nan, "grad_norm": np.nan})
    reporter.check({"nonfinite_skips": 2, "num_steps": 8,
                    "total_loss": np.nan, "grad_norm": np.nan})
    assert len(lines) == 1 and "step 7: non-finite loss" in lines[0]
    assert "update skipped" in lines[0]
