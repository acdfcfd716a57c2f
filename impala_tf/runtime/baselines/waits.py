"""Where the time of each architecture goes: waits, counted in every run.

Actor processes add seconds to their row of `WaitStats`, memory shared
with the learner (a `multiprocessing` RawArray of float64
[num_actors, len(ACTOR_FIELDS)]); the learner process times its own loop
(`TimedBatches`, `timed_step`). `WaitStats.record()` gives the progress
record's fields: cumulative seconds since the run started, summed over
actor processes (a difference between two records over their wall-time
difference is a share of processes' time):

  actor_pull_s      in `pull_weights`: copying the weights, and in the
                    synchronous architectures waiting for the update after
                    the actor's own unroll; in A3C waiting for the learner
                    to apply the worker's last gradient
  actor_act_s       acting (policy calls and environment steps)
  actor_send_s      in `enqueue`: copying the unroll out and waiting for a
                    free slot (back-pressure); in A3C also computing the
                    gradient (`actor_gradient_s` of it)
  actor_gradient_s  A3C: computing the gradient of the worker's unroll
  env_step_s        batched A2C, synchronous step: wall time of the
                    environment processes' steps
  env_straggler_s   of it, the mean time an environment process waited for
                    the slowest one (`envs.process_batch`)
  actor_unrolls     unrolls acted
  learner_wait_s    the learner waiting for its next batch (or gradient)
  learner_step_s    the learner's steps
"""

import time

import numpy as np

from impala_tf import transport

ACTOR_FIELDS = ("actor_pull_s", "actor_act_s", "actor_send_s",
                "actor_gradient_s", "env_step_s", "env_straggler_s",
                "actor_unrolls")
LEARNER_FIELDS = ("learner_wait_s", "learner_step_s")


class WaitStats:
    """Wait counters of `num_actors` actor processes and their learner.

    Args:
      num_actors: actor processes (rows).
      ctx: the `multiprocessing` context that spawns them.

    Picklable only while spawning a process (shared memory); an actor
    writes only its own `row(task)`.
    """

    def __init__(self, num_actors, ctx):
        self._raw = ctx.RawArray("d", max(1, num_actors) * len(ACTOR_FIELDS))
        self.num_actors = num_actors
        self.learner = dict.fromkeys(LEARNER_FIELDS, 0.0)  # Not shared.

    def __getstate__(self):
        return {"_raw": self._raw, "num_actors": self.num_actors}

    def __setstate__(self, state):
        self.__dict__.update(state)
        self.learner = dict.fromkeys(LEARNER_FIELDS, 0.0)

    def _array(self):
        return np.frombuffer(self._raw, np.float64).reshape(
            -1, len(ACTOR_FIELDS))

    def row(self, task):
        """float64 [len(ACTOR_FIELDS)] view: actor `task`'s counters."""
        return self._array()[task]

    def add(self, task, field, seconds):
        self._array()[task, ACTOR_FIELDS.index(field)] += seconds

    def record(self):
        """{field: total} of every actor field (summed over actors) and
        learner field."""
        sums = self._array()[:self.num_actors].sum(axis=0)
        out = {k: float(v) for k, v in zip(ACTOR_FIELDS, sums)}
        out["actor_unrolls"] = int(out["actor_unrolls"])
        out.update(self.learner)
        return out


class Row:
    """Adds seconds to one actor's counters (its `WaitStats.row`)."""

    def __init__(self, row):
        self._row = row

    def add(self, field, seconds):
        self._row[ACTOR_FIELDS.index(field)] += seconds


class TimedTransport(transport.ActorTransport):
    """An actor's transport, timed: `pull_weights` and `enqueue` into
    actor_pull_s and actor_send_s, the time between them into actor_act_s
    (the actor pulls, acts its unroll, then enqueues it)."""

    def __init__(self, inner, row):
        self._inner, self._row = inner, row
        self._pulled = None

    def pull_weights(self):
        start = time.perf_counter()
        try:
            return self._inner.pull_weights()
        finally:
            self._pulled = time.perf_counter()
            self._row.add("actor_pull_s", self._pulled - start)

    def enqueue(self, trajectories):
        start = time.perf_counter()
        if self._pulled is not None:
            self._row.add("actor_act_s", start - self._pulled)
        try:
            self._inner.enqueue(trajectories)
        finally:
            self._row.add("actor_send_s", time.perf_counter() - start)
            self._row.add("actor_unrolls", 1)

    def close(self):
        self._inner.close()


class TimedBatches(transport.BatchSource):
    """The learner's batch source, its waits added to learner_wait_s of
    `stats` (a `WaitStats`)."""

    def __init__(self, inner, stats):
        self._inner, self._stats = inner, stats

    def __next__(self):
        start = time.perf_counter()
        try:
            return next(self._inner)
        finally:
            self._stats.learner["learner_wait_s"] += (time.perf_counter()
                                                      - start)

    def close(self):
        self._inner.close()


def timed_step(step, stats):
    """`step` (callable(batch) -> dict), its time added to
    learner_step_s of `stats`."""
    def timed(batch):
        start = time.perf_counter()
        try:
            return step(batch)
        finally:
            stats.learner["learner_step_s"] += time.perf_counter() - start
    return timed
