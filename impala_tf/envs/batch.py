"""What an actor steps: N environments in lock-step, one interface.

An actor owns one `EnvironmentBatch` of N = `envs_per_actor` environments
and calls it with the trajectory buffers it fills: `types.Trajectory` of
numpy arrays, each [N, T+1, ...] (batch-major, T+1 steps; reward float32,
done bool, observation {'frame': uint8 [N, T+1, H, W, C], optional
'instruction': object (str) [N, T+1]}, game_over bool, episode_return
float32, episode_step int32). A batch writes column t of them:

  * `reset_into(t, buffers)`: resets every environment (a real reset, the
    start of an actor) and writes the first observations at column t.
  * `step_into(actions, t, buffers)`: steps environment i with `actions[i]`
    (int [N], action indices) and writes reward and observation of column t
    for all, and done, game_over and the finished game's return and length
    (in agent steps) only where they are set (the actor zeroes those
    columns first). An environment whose episode ends is reset at once: its
    column t holds done=True, the final reward and the reset observation
    (the release's convention).
  * `close()`; `num_envs`; `observation_spec()` (one environment's dm_env
    spec).

Two implementations: `DmEnvBatch` steps any N `dm_env.Environment`s of a
`registry.LevelSet` one after the other (DMLab, a user's `MODULE:FUNCTION`,
Atari without `--vector_env`); `AtariEnvironmentBatch` steps N Atari games
as one `atari_vector.AtariBatch` (batched preprocessing, same semantics).
`make` picks one. Both keep the running return and length of each
environment's game in one `EpisodeTally`.

A batch tells an optional `monitor(index, call)` which environment it is
about to work on and how ('construction', 'reset', 'step' or 'close')
before each such call: the watchdog (`impala_tf.runtime.watchdog`) wraps a batch
from outside through it; nothing here knows about the watchdog.
"""

import abc

import numpy as np

CALLS = ("construction", "reset", "step", "close")


def _no_monitor(index, call):
    del index, call


class EpisodeTally:
    """Running return and length of each environment's current game."""

    def __init__(self, num_envs):
        self._returns = np.zeros(num_envs, np.float32)
        self._steps = np.zeros(num_envs, np.int32)

    def record(self, t, buffers, reward, done, game_over):
        """Writes column t's reward, done and game statistics.

        reward float32 [N]; done bool [N]; game_over bool [N] (only where
        done: the episode that ended was a whole game). done, game_over,
        episode_return and episode_step are written only where set.
        """
        buffers.env_outputs.reward[:, t] = reward
        self._returns += reward
        self._steps += 1
        if done.any():
            buffers.env_outputs.done[:, t] = done
            buffers.game_over[:, t] = game_over
            buffers.episode_return[game_over, t] = self._returns[game_over]
            buffers.episode_step[game_over, t] = self._steps[game_over]
            self._returns[game_over] = 0.0
            self._steps[game_over] = 0


def observation_columns(buffers, t):
    """{key: [N, ...] view of column t} of the buffers' observations."""
    return {k: v[:, t] for k, v in buffers.env_outputs.observation.items()}


class EnvironmentBatch(abc.ABC):
    """N environments stepped together (see the module doc for the calls)."""

    @property
    @abc.abstractmethod
    def num_envs(self):
        """N."""

    @abc.abstractmethod
    def observation_spec(self):
        """One environment's dm_env observation spec."""

    @abc.abstractmethod
    def reset_into(self, t, buffers):
        """Resets every environment; writes the first observations at t."""

    @abc.abstractmethod
    def step_into(self, actions, t, buffers):
        """Steps env i with `actions[i]`; writes column t (module doc)."""

    @abc.abstractmethod
    def close(self):
        """Releases every environment."""


class DmEnvBatch(EnvironmentBatch):
    """N `dm_env.Environment`s of a level set, stepped one after the other.

    Args:
      level_set: a `registry.LevelSet`; environment i is
        `level_set.make(level_ids[i], seed=seeds[i])`.
      level_ids: N level indices; seeds: N seeds.
      monitor: optional callable(index, call) (module doc).

    An observation is an array (written as 'frame') or a dict holding at
    least the buffers' keys. A LAST timestep ends a game unless the
    environment has `is_game_over()` and it says False (Atari's life loss).
    """

    def __init__(self, level_set, level_ids, seeds, monitor=None):
        self._monitor = monitor or _no_monitor
        self._envs = []
        for i, (level, seed) in enumerate(zip(level_ids, seeds)):
            self._monitor(i, "construction")
            self._envs.append(level_set.make(int(level), seed=seed))
        self._tally = EpisodeTally(len(self._envs))

    @property
    def num_envs(self):
        return len(self._envs)

    def observation_spec(self):
        return self._envs[0].observation_spec()

    @staticmethod
    def _write(observation, i, out):
        if isinstance(observation, dict):
            for k, dst in out.items():
                dst[i] = observation[k]
        else:
            out["frame"][i] = observation

    def reset_into(self, t, buffers):
        out = observation_columns(buffers, t)
        for i, env in enumerate(self._envs):
            self._monitor(i, "reset")
            self._write(env.reset().observation, i, out)

    def step_into(self, actions, t, buffers):
        out = observation_columns(buffers, t)
        n = len(self._envs)
        reward = np.zeros(n, np.float32)
        done = np.zeros(n, bool)
        game_over = np.zeros(n, bool)
        monitor = self._monitor
        for i, env in enumerate(self._envs):
            monitor(i, "step")
            ts = env.step(int(actions[i]))
            reward[i] = ts.reward or 0.0
            if ts.last():
                done[i] = True
                is_game_over = getattr(env, "is_game_over", None)
                game_over[i] = is_game_over is None or is_game_over()
                monitor(i, "reset")
                ts = env.reset()
            self._write(ts.observation, i, out)
        self._tally.record(t, buffers, reward, done, game_over)

    def close(self):
        for i, env in enumerate(self._envs):
            self._monitor(i, "close")
            env.close()


class AtariEnvironmentBatch(EnvironmentBatch):
    """N Atari games of a level set as one `atari_vector.AtariBatch`.

    Args as `DmEnvBatch`; the games get `level_set.make`'s training
    arguments (`atari_vector.make_batch`). Observations go straight into the
    buffers' 'frame' column.
    """

    def __init__(self, level_set, level_ids, seeds, monitor=None):
        from impala_tf.envs import atari_vector  # pylint: disable=g-import-not-at-top
        self._batch = atari_vector.make_batch(level_set, level_ids, seeds,
                                              monitor=monitor)
        self._tally = EpisodeTally(self._batch.num_envs)

    @property
    def num_envs(self):
        return self._batch.num_envs

    def observation_spec(self):
        return self._batch.observation_spec()

    def reset_into(self, t, buffers):
        self._batch.reset(out=buffers.env_outputs.observation["frame"][:, t])

    def step_into(self, actions, t, buffers):
        _, reward, done, game_over = self._batch.step(
            actions, out=buffers.env_outputs.observation["frame"][:, t])
        self._tally.record(t, buffers, reward, done, game_over)

    def close(self):
        self._batch.close()


def make(level_set, level_ids, seeds, vector_env=True, monitor=None):
    """The `EnvironmentBatch` for N environments of `level_set`.

    Args:
      level_set: a `registry.LevelSet`.
      level_ids: N level indices (int); seeds: N non-negative seeds.
      vector_env: Atari games as one `AtariEnvironmentBatch` (batched
        preprocessing); other suites ignore it.
      monitor: optional callable(index, call), told before each call on
        environment `index` (module doc; the watchdog's hook).
    """
    if vector_env and level_set.kind == "atari":
        return AtariEnvironmentBatch(level_set, level_ids, seeds, monitor)
    return DmEnvBatch(level_set, level_ids, seeds, monitor)
