"""Environment watchdog: name the level of an environment that fails or hangs.

An actor process steps its environments through `GuardedEnvironment`, which

  * turns any exception an environment raises (in its constructor, `reset`,
    `step` or `close`) into `EnvironmentFailure`, whose message names the
    level and the call, so the actor can exit with one clear line and its
    supervisor restarts it;
  * writes a heartbeat into memory shared with the supervisor (a
    `multiprocessing` `RawArray` of `HEARTBEAT_SIZE` doubles): when a call
    begins, which level, which call, and how many timeouts it may take.

The supervisor (`supervisor.ActorSupervisor.poll`) reads the heartbeat and
kills an actor whose environment call has run longer than `--env_timeout_s`;
because the check runs in the learner process, it also catches environments
that hang in C code holding the actor's GIL. Constructing an environment and
its first `reset` may take `FIRST_CALL_ALLOWANCE` timeouts (DeepMind Lab
compiles its maps there).
"""

import dataclasses
import time
import typing

import dm_env

from impala_tf.envs import registry

HEARTBEAT_SIZE = 5  # [call start (time.monotonic, 0: idle), level id,
#                     call code, allowance in timeouts, 1: process running]
CALLS = ("construction", "reset", "step", "close")
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


class GuardedEnvironment(dm_env.Environment):
    """Forwards to `env`; beats the heartbeat and names the level on errors."""

    def __init__(self, env, level, level_id, heartbeat=None):
        self._env = env
        self._level = level
        self._level_id = level_id
        self._heartbeat = heartbeat
        self._reset_before = False
        self._failed = False

    def _call(self, call, fn, *args, allowance=1.0):
        if self._heartbeat is not None:
            begin(self._heartbeat, self._level_id, call, allowance)
        try:
            return fn(*args)
        except Exception as e:  # pylint: disable=broad-except
            self._failed = True
            raise EnvironmentFailure(self._level, f"{call}()", e) from e
        finally:
            if self._heartbeat is not None:
                end(self._heartbeat)

    def reset(self):
        allowance = 1.0 if self._reset_before else FIRST_CALL_ALLOWANCE
        self._reset_before = True
        return self._call("reset", self._env.reset, allowance=allowance)

    def step(self, action):
        return self._call("step", self._env.step, action)

    def observation_spec(self):
        return self._env.observation_spec()

    def action_spec(self):
        return self._env.action_spec()

    def close(self):
        try:
            self._call("close", self._env.close)
        except EnvironmentFailure:
            if not self._failed:
                raise  # A failed environment may fail to close too.

    def __getattr__(self, name):  # e.g. Atari's is_game_over().
        return getattr(self._env, name)


@dataclasses.dataclass(frozen=True)
class GuardedLevelSet(registry.LevelSet):
    """A `LevelSet` whose environments are `GuardedEnvironment`s."""
    heartbeat: typing.Any = None

    def make(self, level_id, seed, is_test=False):
        level = level_label(self, level_id)
        hb = self.heartbeat
        if hb is not None:
            begin(hb, level_id, "construction", FIRST_CALL_ALLOWANCE)
        try:
            env = super().make(level_id, seed, is_test=is_test)
        except Exception as e:  # pylint: disable=broad-except
            raise EnvironmentFailure(level, "construction", e) from e
        finally:
            if hb is not None:
                end(hb)
        return GuardedEnvironment(env, level, level_id, hb)


def guard_level_set(level_set, heartbeat=None):
    """`level_set` with guarded environments (in the actor process only)."""
    fields = {f.name: getattr(level_set, f.name)
              for f in dataclasses.fields(registry.LevelSet)}
    return GuardedLevelSet(**fields, heartbeat=heartbeat)
