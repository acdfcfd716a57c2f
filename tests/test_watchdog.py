"""Tests for impala_tf.runtime.watchdog: guarded environment batches name the
level and call that failed, and the heartbeat says which call is overdue."""

import time

import numpy as np
import pytest
import tensorflow as tf

from impala_tf import types
from impala_tf.runtime import watchdog
from impala_tf.envs import batch as env_batch
from impala_tf.envs import registry


def _buffers(n, unroll):
    """Zeroed trajectory buffers [n, unroll + 1, ...] for the toy env."""
    spec = types.trajectory_spec(
        2, {"frame": tf.TensorSpec([24, 24, 3], tf.uint8)}, unroll, ())
    return types.zero_trajectories(spec, n)


def test_guarded_batch_names_the_level_and_beats():
    heartbeat = [0.0] * watchdog.HEARTBEAT_SIZE
    level = "tests.faulty_envs:step_fails"
    envs = watchdog.guarded(env_batch.make, heartbeat)(
        registry.parse_level_name(level), [0, 0], [0, 1])
    buffers = _buffers(2, 2)
    envs.reset_into(0, buffers)
    assert heartbeat[0] == 0.0
    with pytest.raises(watchdog.EnvironmentFailure) as info:
        envs.step_into(np.zeros(2, np.int32), 1, buffers)
    assert str(info.value) == (
        f"environment '{level}' raised KeyError in step(): 'boom'")
    assert heartbeat[0] == 0.0
    envs.close()  # A failed environment that fails to close: no new error.
    watchdog.begin(heartbeat, 3, "step")
    assert watchdog.overdue(heartbeat, 10.0) is None
    level, call, running = watchdog.overdue(
        heartbeat, 10.0, now=time.monotonic() + 11)
    assert (level, call) == (3, "step") and running > 10
    watchdog.begin(heartbeat, 0, "reset", watchdog.FIRST_CALL_ALLOWANCE)
    assert watchdog.overdue(heartbeat, 10.0, time.monotonic() + 11) is None
    with pytest.raises(watchdog.EnvironmentFailure,
                       match="'tests.faulty_envs:broken_env' raised "
                             "RuntimeError in construction: no such device"):
        watchdog.guarded(env_batch.make)(registry.parse_level_name(
            "tests.faulty_envs:broken_env"), [0], [0])


def test_guarded_batch_close_failure_of_a_healthy_batch_is_named():
    envs = watchdog.guarded(env_batch.make)(registry.parse_level_name(
        "tests.faulty_envs:step_fails"), [0], [0])
    with pytest.raises(watchdog.EnvironmentFailure,
                       match="raised OSError in close\\(\\): also broken"):
        envs.close()
