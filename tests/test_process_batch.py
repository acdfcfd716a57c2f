"""impala_tf.envs.process_batch: environments in processes, lock-step."""

import time

import numpy as np
import pytest

from impala_tf import testing
from impala_tf.envs import batch as env_batch
from impala_tf.envs import process_batch
from impala_tf.envs import registry
from impala_tf.envs import toy

UNEVEN = "tests.test_process_batch:uneven_env"
SLOW_STEP_S = 0.03


class Uneven(toy.ColourChoice):
    """The toy level; the environment of seed 0 takes SLOW_STEP_S per step
    (sleeping: a straggler that costs no CPU), the others nothing."""

    def step(self, action):
        if self._seed == 0:
            time.sleep(SLOW_STEP_S)
        return super().step(action)

    def __init__(self, seed=0):
        super().__init__(seed=seed)
        self._seed = seed


def uneven_env(seed=0):
    return Uneven(seed=seed)


def _buffers(n, steps, frame_shape):
    """Zeroed buffers [n, steps, ...] with the fields a batch writes."""
    return process_batch._Column(  # pylint: disable=protected-access
        env_outputs=process_batch._Outputs(  # pylint: disable=protected-access
            reward=np.zeros([n, steps], np.float32),
            done=np.zeros([n, steps], bool),
            observation={"frame": np.zeros((n, steps) + frame_shape,
                                           np.uint8)}),
        game_over=np.zeros([n, steps], bool),
        episode_return=np.zeros([n, steps], np.float32),
        episode_step=np.zeros([n, steps], np.int32))


def _play(batch, n, steps, seed):
    buffers = _buffers(n, steps + 1, (24, 24, 3))
    batch.reset_into(0, buffers)
    rng = np.random.default_rng(seed)
    for t in range(1, steps + 1):
        batch.step_into(rng.integers(0, 2, n), t, buffers)
    return buffers


def test_same_columns_as_one_process():
    level_set = registry.parse_level_name(testing.TOY_LEVEL)
    n, steps = 5, 25  # Episodes of 10 steps: done and returns are written.
    ids, seeds = [0] * n, [11 + i for i in range(n)]
    local = env_batch.make(level_set, ids, seeds)
    want = _play(local, n, steps, seed=3)
    local.close()
    batch = process_batch.ProcessBatch(level_set, ids, seeds, 3, (24, 24, 3))
    try:
        assert batch.num_envs == n and batch.num_processes == 3
        assert batch.observation_spec().shape == (24, 24, 3)
        got = _play(batch, n, steps, seed=3)
    finally:
        batch.close()
    for w, g in zip(_leaves(want), _leaves(got)):
        np.testing.assert_array_equal(w, g)
    assert got.game_over.sum() == 2 * n  # Steps 10 and 20.
    assert np.all(got.episode_step[got.game_over] == 10)


def _leaves(buffers):
    return [buffers.env_outputs.reward, buffers.env_outputs.done,
            buffers.env_outputs.observation["frame"], buffers.game_over,
            buffers.episode_return, buffers.episode_step]


def test_every_step_waits_for_the_slowest_process():
    level_set = registry.parse_level_name(UNEVEN)
    records = []
    batch = process_batch.ProcessBatch(
        level_set, [0, 0], [0, 1], 2, (24, 24, 3),
        record=lambda wall, straggler: records.append((wall, straggler)))
    try:
        _play(batch, 2, 5, seed=0)
        slow, fast = batch.durations
    finally:
        batch.close()
    assert len(records) == 5
    for wall, straggler in records:
        assert wall >= SLOW_STEP_S  # Nobody moves before the slowest.
        # The fast process waits for the slow one: half of the difference
        # on average over the two.
        assert straggler >= (SLOW_STEP_S - 0.01) / 2
    assert slow >= SLOW_STEP_S > fast


def test_a_failing_environment_is_named_and_children_end():
    level_set = registry.parse_level_name("tests.faulty_envs:step_fails")
    batch = process_batch.ProcessBatch(level_set, [0, 0], [0, 1], 2,
                                       (24, 24, 3))
    procs = list(batch._procs)  # pylint: disable=protected-access
    with pytest.raises(RuntimeError, match=r"environments 0\.\.0 failed in "
                       r"step: KeyError: 'boom'"):
        _play(batch, 2, 3, seed=0)
    batch.close()
    assert not any(p.is_alive() for p in procs)


def test_construction_failure_and_bad_sizes():
    level_set = registry.parse_level_name("tests.faulty_envs:broken_env")
    with pytest.raises(RuntimeError, match="construction: RuntimeError: no "
                       "such device"):
        process_batch.ProcessBatch(level_set, [0], [0], 1, (24, 24, 3))
    toy_set = registry.parse_level_name(testing.TOY_LEVEL)
    with pytest.raises(ValueError, match="between 1 and the 2"):
        process_batch.ProcessBatch(toy_set, [0, 0], [0, 1], 3, (24, 24, 3))
