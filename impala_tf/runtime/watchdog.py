"""Environment watchdog: name the level of an environment that fails or hangs.

An actor process steps its environments as a `GuardedBatch`, which wraps an
`envs.batch.EnvironmentBatch` from outside (built by `guarded(envs.batch.make,
heartbeat)`; the batch only calls the `monitor(index, call)` hook it is given
before each call on one of its environments) and

  * turns any exception an environment raises (in its constructor, `reset`,
    `step` or `close`) into `EnvironmentFailure`, whose message names the
    level and the call, so the actor can exit with one clear line and its
    supervisor restarts it;
  * writes a heartbeat into memory shared with the supervisor (a
    `multiprocessing` `RawArray` of `HEARTBEAT_SIZE` doubles): when a call
    on one environment begins, which level, which call, and how many
    timeouts it may take.

The supervisor (`supervisor.ActorSupervisor.poll`) reads the heartbeat and
kills an actor whose environment call has run longer than `--env_timeout_s`;
because the check runs in the learner process, it also catches environments
that hang in C code holding the actor's GIL. Constructing an environment and
its first `reset` may take `FIRST_CALL_ALLOWANCE` timeouts (DeepMind Lab
compiles its maps there).
"""

import functools
import time

from impala_tf.envs import batch as env_batch

HEARTBEAT_SIZE = 5  # [call start (time.monotonic, 0: idle), level id,
#                     call code, allowance in timeouts, 1: process running]
CALLS = env_batch.CALLS
FIRST_CALL_ALLOWANCE = 10.0


class EnvironmentFailure(Exception):
    """An environment raised; the message is one sentence naming the level."""

    def __init__(self, level, call, cause):
        first = str(cause).strip().splitlines()[0] if str(cause).strip() else ""
        super().__init__(
            f"environment {level} raised {type(cause).__name__} in {call}"
            + (f": {first[:300]}" if first else ""))
        self.level = level
        self.call = call


def clear(heartbeat):
    for i in range(HEARTBEAT_SIZE):
        heartbeat[i] = 0.0


def mark_running(heartbeat):
    """The actor process is past its start-up (imports): stop it gently."""
    heartbeat[4] = 1.0


def running(heartbeat):
    return heartbeat[4] > 0


def begin(heartbeat, level_id, call, allowance=1.0):
    heartbeat[1] = float(level_id)
    heartbeat[2] = float(CALLS.index(call))
    heartbeat[3] = float(allowance)
    heartbeat[0] = time.monotonic()  # Last: a reader never sees a stale id.


def end(heartbeat):
    heartbeat[0] = 0.0


def overdue(heartbeat, timeout_s, now=None):
    """(level_id, call, seconds running) if the call is past its time."""
    start = heartbeat[0]
    if not timeout_s or timeout_s <= 0 or start <= 0:
        return None
    running = (time.monotonic() if now is None else now) - start
    if running <= timeout_s * max(heartbeat[3], 1.0):
        return None
    return int(heartbeat[1]), CALLS[int(heartbeat[2])], running


def level_label(level_set, level_id):
    """The quoted name a user knows: the flag value, or the level of a set."""
    if not level_set.is_multitask:
        return f"'{level_set.name}'"
    return f"'{level_set.levels[level_id]}' (of {level_set.name})"


class _Monitor:
    """The `monitor(index, call)` hook a guarded batch is built with."""

    def __init__(self, level_ids, heartbeat):
        self._level_ids = level_ids
        self._heartbeat = heartbeat
        self.first = True  # Construction and the first reset: long calls.
        self.index = 0     # The environment being worked on.
        self.call = "construction"

    def __call__(self, index, call):
        self.index, self.call = index, call
        if self._heartbeat is not None:
            begin(self._heartbeat, self._level_ids[index], call,
                  FIRST_CALL_ALLOWANCE if self.first else 1.0)


class GuardedBatch(env_batch.EnvironmentBatch):
    """An environment batch that beats the heartbeat and names failures.

    Args:
      make_batch: callable(monitor=...) -> the `env_batch.EnvironmentBatch`
        to guard (built here, under the guard).
      level_set: the `registry.LevelSet` the batch's levels come from.
      level_ids: the batch's N level indices (names the failing level).
      heartbeat: the supervisor's shared heartbeat (None: failures are
        still named, nothing is beaten).

    Any exception of the batch (construction, `reset_into`, `step_into`,
    `close`) becomes `EnvironmentFailure` naming the level of the
    environment the batch was working on. A batch that failed may fail to
    close too: that second error is dropped.
    """

    def __init__(self, make_batch, level_set, level_ids, heartbeat=None):
        self._level_set = level_set
        self._level_ids = [int(i) for i in level_ids]
        self._heartbeat = heartbeat
        self._monitor = _Monitor(self._level_ids, heartbeat)
        self._failed = False
        self._batch = self._guard(make_batch, monitor=self._monitor)

    def _guard(self, fn, *args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except Exception as e:  # pylint: disable=broad-except
            self._failed = True
            m = self._monitor
            raise EnvironmentFailure(
                level_label(self._level_set, self._level_ids[m.index]),
                m.call if m.call == "construction" else f"{m.call}()",
                e) from e
        finally:
            if self._heartbeat is not None:
                end(self._heartbeat)

    @property
    def num_envs(self):
        return self._batch.num_envs

    def observation_spec(self):
        return self._batch.observation_spec()

    def reset_into(self, t, buffers):
        self._guard(self._batch.reset_into, t, buffers)
        self._monitor.first = False

    def step_into(self, actions, t, buffers):
        self._monitor.first = False
        self._guard(self._batch.step_into, actions, t, buffers)

    def close(self):
        failed = self._failed
        try:
            self._guard(self._batch.close)
        except EnvironmentFailure:
            if not failed:
                raise


def guarded(make, heartbeat=None):
    """`make` (as `env_batch.make`) building `GuardedBatch`es.

    Returns callable(level_set, level_ids, seeds, **kwargs) -> a
    `GuardedBatch` around `make(level_set, level_ids, seeds, **kwargs,
    monitor=...)`; used in the actor process with its heartbeat.
    """
    def make_guarded(level_set, level_ids, seeds, **kwargs):
        return GuardedBatch(
            functools.partial(make, level_set, level_ids, seeds, **kwargs),
            level_set, level_ids, heartbeat)
    return make_guarded
