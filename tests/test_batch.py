"""impala_tf.envs.batch: one interface for the environments an actor steps."""

import ast
import os
import pathlib
import subprocess
import sys

import dm_env
from dm_env import specs
import numpy as np
import pytest
import tensorflow as tf

from impala_tf import types
from impala_tf import testing
from impala_tf.runtime import watchdog
from impala_tf.envs import batch as env_batch
from impala_tf.envs import registry

TOY = testing.TOY_LEVEL
COUNTER = "tests.test_batch:counter_env"
ROOT = pathlib.Path(__file__).resolve().parents[1]


class Counter(dm_env.Environment):
    """Deterministic dict observations; episodes of 2..4 steps; every other
    episode end is a life loss (`is_game_over()` False), as Atari's."""

    def __init__(self, seed=0):
        self._length = 2 + seed % 3
        self._t = 0
        self._episodes = 0
        self._over = False

    def _obs(self):
        return {"frame": np.full([4, 4, 1], 1 + self._t, np.uint8),
                "instruction": f"episode {self._episodes}",
                "unused": 7}

    def reset(self):
        self._t = 0
        return dm_env.restart(self._obs())

    def step(self, action):
        self._t += 1
        reward = float(action) + 0.5
        if self._t >= self._length:
            self._episodes += 1
            self._over = self._episodes % 2 == 0
            return dm_env.termination(reward, self._obs())
        return dm_env.transition(reward, self._obs())

    def is_game_over(self):
        return self._over

    def observation_spec(self):
        return {"frame": specs.Array([4, 4, 1], np.uint8),
                "instruction": specs.Array([], str)}

    def action_spec(self):
        return specs.DiscreteArray(3)


def counter_env(seed=0):
    return Counter(seed=seed)


def _buffers(level_set, n, unroll):
    """Zeroed trajectory buffers [n, unroll + 1, ...] for `level_set`."""
    env = level_set.make(0, seed=0)
    obs_spec = types.observation_spec(env)
    num_actions = types.num_actions_of(env)
    env.close()
    spec = types.trajectory_spec(num_actions, obs_spec, unroll, ())
    return types.zero_trajectories(spec, n), num_actions


def _clear_flags(buffers):
    """What the actor does before each unroll."""
    buffers.env_outputs.done[:] = False
    buffers.game_over[:] = False
    buffers.episode_return[:] = 0
    buffers.episode_step[:] = 0


@pytest.mark.parametrize("level,vector,kind", [
    ("atari/pong", True, env_batch.AtariEnvironmentBatch),
    ("atari/pong", False, env_batch.DmEnvBatch),
    (TOY, True, env_batch.DmEnvBatch),
    (COUNTER, True, env_batch.DmEnvBatch)])
def test_both_implementations_obey_the_interface(level, vector, kind):
    level_set = registry.parse_level_name(level)
    n, unroll = 3, 4
    envs = env_batch.make(level_set, [0] * n, [1, 2, 3], vector_env=vector)
    assert isinstance(envs, kind)
    assert isinstance(envs, env_batch.EnvironmentBatch)
    assert envs.num_envs == n
    probe = level_set.make(0, seed=0)
    assert envs.observation_spec() == probe.observation_spec()
    probe.close()
    buffers, num_actions = _buffers(level_set, n, unroll)
    frames = buffers.env_outputs.observation["frame"]
    envs.reset_into(unroll, buffers)
    assert frames[:, unroll].any() and not frames[:, :unroll].any()
    _clear_flags(buffers)
    for t in range(1, unroll + 1):
        envs.step_into(np.full(n, num_actions - 1, np.int32), t, buffers)
    # Only columns 1..T were written by steps.
    assert not buffers.env_outputs.reward[:, 0].any()
    assert buffers.env_outputs.reward.dtype == np.float32
    assert buffers.episode_step.dtype == np.int32
    envs.close()


def test_generic_batch_writes_what_stepping_one_by_one_gives():
    level_set = registry.parse_level_name(COUNTER)
    seeds = [0, 1, 2, 3]
    n, unroll, unrolls = len(seeds), 5, 4
    rng = np.random.default_rng(0)
    actions = rng.integers(0, 3, (unrolls * unroll, n))
    envs = env_batch.make(level_set, [0] * n, seeds)
    buffers, _ = _buffers(level_set, n, unroll)
    envs.reset_into(0, buffers)
    refs = [Counter(seed=s) for s in seeds]
    obs = [env.reset().observation for env in refs]
    for i in range(n):
        assert buffers.env_outputs.observation["instruction"][i, 0] == (
            obs[i]["instruction"])
    returns = np.zeros(n)
    lengths = np.zeros(n, int)
    games = lives_lost = 0
    for u in range(unrolls):
        _clear_flags(buffers)
        for t in range(1, unroll + 1):
            a = actions[u * unroll + t - 1]
            envs.step_into(a.astype(np.int32), t, buffers)
            for i, env in enumerate(refs):
                ts = env.step(int(a[i]))
                returns[i] += ts.reward
                lengths[i] += 1
                assert buffers.env_outputs.reward[i, t] == ts.reward
                assert buffers.env_outputs.done[i, t] == ts.last()
                over = ts.last() and env.is_game_over()
                assert buffers.game_over[i, t] == over
                if over:
                    games += 1
                    assert buffers.episode_return[i, t] == returns[i]
                    assert buffers.episode_step[i, t] == lengths[i]
                    returns[i], lengths[i] = 0.0, 0
                else:
                    assert buffers.episode_return[i, t] == 0
                    assert buffers.episode_step[i, t] == 0
                if ts.last():
                    lives_lost += int(not over)
                    ts = env.reset()
                np.testing.assert_array_equal(
                    buffers.env_outputs.observation["frame"][i, t],
                    ts.observation["frame"])
                assert (buffers.env_outputs.observation["instruction"][i, t]
                        == ts.observation["instruction"])
    assert games >= n and lives_lost >= n  # Both kinds of episode end.
    envs.close()


def test_a_plain_dm_env_ends_a_game_at_every_last_step():
    level_set = registry.parse_level_name(TOY)  # No is_game_over().
    envs = env_batch.make(level_set, [0, 0], [5, 6])
    buffers, _ = _buffers(level_set, 2, 10)
    envs.reset_into(0, buffers)
    for t in range(1, 11):
        envs.step_into(np.zeros(2, np.int32), t, buffers)
    np.testing.assert_array_equal(buffers.env_outputs.done[:, 10], True)
    np.testing.assert_array_equal(buffers.game_over,
                                  buffers.env_outputs.done)
    np.testing.assert_array_equal(buffers.episode_step[:, 10], 10)
    np.testing.assert_array_equal(
        buffers.episode_return[:, 10],
        buffers.env_outputs.reward[:, 1:].sum(axis=1))
    envs.close()


def test_watchdog_wraps_a_batch_from_outside():
    heartbeat = [0.0] * watchdog.HEARTBEAT_SIZE
    beats = []

    def spying_make(*args, monitor, **kwargs):
        def spy(index, call):
            monitor(index, call)
            beats.append((index, call, heartbeat[1], heartbeat[3]))
        return env_batch.make(*args, monitor=spy, **kwargs)

    level_set = registry.parse_level_name(COUNTER)
    guarded = watchdog.guarded(spying_make, heartbeat)(
        level_set, [0, 0], [0, 1])
    plain = env_batch.make(level_set, [0, 0], [0, 1])
    assert isinstance(guarded, env_batch.EnvironmentBatch)
    assert guarded.num_envs == 2
    a, _ = _buffers(level_set, 2, 3)
    b, _ = _buffers(level_set, 2, 3)
    guarded.reset_into(0, a)
    plain.reset_into(0, b)
    for t in range(1, 4):
        guarded.step_into(np.array([1, 2], np.int32), t, a)
        plain.step_into(np.array([1, 2], np.int32), t, b)
    for x, y in zip(tf.nest.flatten(a), tf.nest.flatten(b)):
        np.testing.assert_array_equal(x, y)
    calls = [(i, c) for i, c, _, _ in beats]
    assert calls[:4] == [(0, "construction"), (1, "construction"),
                         (0, "reset"), (1, "reset")]
    assert {c for _, c in calls[4:]} == {"step", "reset"}
    allowances = {c: w for _, c, _, w in beats[:4]}
    assert allowances == {"construction": watchdog.FIRST_CALL_ALLOWANCE,
                          "reset": watchdog.FIRST_CALL_ALLOWANCE}
    assert all(w == 1.0 for _, _, _, w in beats[4:])
    assert heartbeat[0] == 0.0  # Idle between calls.
    guarded.close()
    plain.close()


def test_guarded_batch_names_the_level_of_a_multitask_set():
    heartbeat = [0.0] * watchdog.HEARTBEAT_SIZE
    level_set = registry.parse_level_name("atari57")

    def fail_in_game_2(*args, monitor, **kwargs):
        def hook(index, call):
            monitor(index, call)
            if index == 2 and call == "construction":
                raise OSError("no ROM")
        return env_batch.make(*args, monitor=hook, **kwargs)

    with pytest.raises(watchdog.EnvironmentFailure,
                       match=f"'{level_set.levels[5]}' \\(of atari57\\) "
                             "raised OSError in construction: no ROM"):
        watchdog.guarded(fail_in_game_2, heartbeat)(
            level_set, [3, 4, 5], [0, 1, 2])
    assert heartbeat[0] == 0.0


def test_custom_levels_default_to_several_envs_per_actor():
    custom = registry.parse_level_name(COUNTER).defaults["envs_per_actor"]
    assert custom > 1
    assert registry.parse_level_name("atari/pong").defaults[
        "envs_per_actor"] == 64
    assert registry.parse_level_name("dmlab30").defaults[
        "envs_per_actor"] == 1


def test_suite_env_kwargs_keep_what_each_suite_takes():
    options = dict(sticky_action_prob=0.25, num_action_repeats=None,
                   level_cache_dir="/tmp/cache", dataset_path=None)
    assert registry.parse_level_name("atari/pong", **options).env_kwargs == {
        "sticky_action_prob": 0.25}
    assert registry.parse_level_name("dmlab30", **options).env_kwargs == {
        "level_cache_dir": "/tmp/cache"}
    assert registry.parse_level_name(TOY, **options).env_kwargs == {}


def _imports(path):
    """Every module name imported anywhere in the file (lazy ones too)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{a.name}" for a in node.names)
    return names


def test_envs_never_import_the_watchdog():
    files = sorted((ROOT / "impala_tf" / "envs").glob("*.py"))
    assert len(files) > 5
    for path in files:
        bad = {n for n in _imports(path)
               if n == "impala_tf.runtime.watchdog"
               or n.startswith("impala_tf.runtime.watchdog.")}
        assert not bad, f"{path.name} imports {sorted(bad)}"
    modules = [f"impala_tf.envs.{p.stem}" for p in files
               if p.stem != "__init__"]
    code = ("import importlib, sys\n"
            f"for m in {modules!r}: importlib.import_module(m)\n"
            "print('impala_tf.runtime.watchdog' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT,
                         capture_output=True, text=True, timeout=300,
                         env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"),
                         check=True).stdout
    assert out.strip().splitlines()[-1] == "False"
