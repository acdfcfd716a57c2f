"""types: the observation, action and trajectory specs, on the toy
environment and on environments that do not fit."""

from dm_env import specs
import numpy as np
import pytest
import tensorflow as tf

from impala_tf import types
from impala_tf.envs import toy


class _Observation(toy.ColourChoice):
    """ColourChoice with another observation spec."""

    def __init__(self, spec):
        super().__init__(seed=0)
        self._spec = spec

    def observation_spec(self):
        return self._spec


class _BoundedActions(toy.ColourChoice):

    def action_spec(self):
        return specs.BoundedArray((), np.int32, 0, 1, name="action")


FRAME = specs.BoundedArray((24, 24, 3), np.uint8, 0, 255, name="frame")


def test_observation_spec_of_the_toy_env():
    assert types.observation_spec(toy.ColourChoice(size=12)) == {
        "frame": tf.TensorSpec([12, 12, 3], tf.uint8)}
    text = _Observation({"frame": FRAME,
                         "instruction": specs.Array([], object)})
    assert types.observation_spec(text) == {
        "frame": tf.TensorSpec([24, 24, 3], tf.uint8),
        "instruction": tf.TensorSpec([], tf.string)}


@pytest.mark.parametrize("spec,message", [
    ({"pixels": FRAME}, r"a dict with a 'frame' entry, got keys \['pixels'\]"),
    (specs.Array((24, 24, 3), np.float32),
     r"frame must be uint8 \[H, W, C\], got float32 \(24, 24, 3\)"),
    ({"frame": specs.Array((24, 24), np.uint8)},
     r"got uint8 \(24, 24\)"),
])
def test_observation_spec_refuses_what_the_agents_cannot_see(spec, message):
    with pytest.raises(ValueError, match=message):
        types.observation_spec(_Observation(spec))


def test_num_actions_of():
    assert types.num_actions_of(toy.ColourChoice(num_actions=3)) == 3
    with pytest.raises(ValueError, match="must be a dm_env DiscreteArray, "
                                         "got BoundedArray"):
        types.num_actions_of(_BoundedActions())


def test_trajectory_spec_shapes():
    env = toy.ColourChoice(size=8)
    state = (tf.TensorSpec([None, 256], tf.float32),) * 2  # An LSTM's (c, h).
    spec = types.trajectory_spec(types.num_actions_of(env),
                                 types.observation_spec(env), 5, state)
    assert spec.agent_state == (tf.TensorSpec([256], tf.float32),) * 2
    assert spec.env_outputs.observation["frame"] == tf.TensorSpec(
        [6, 8, 8, 3], tf.uint8)
    assert spec.env_outputs.reward == tf.TensorSpec([6], tf.float32)
    assert spec.agent_outputs.policy_logits == tf.TensorSpec([6, 2],
                                                             tf.float32)
    assert spec.level_id == tf.TensorSpec([], tf.int32)
    assert spec.policy_version == tf.TensorSpec([], tf.int64)
    batched = types.batch_spec(spec, 4)
    assert batched.env_outputs.observation["frame"] == tf.TensorSpec(
        [4, 6, 8, 8, 3], tf.uint8)
    assert batched.replayed == tf.TensorSpec([4], tf.bool)
    assert batched.agent_state == (tf.TensorSpec([4, 256], tf.float32),) * 2


def test_zero_trajectories_hold_a_real_unroll():
    env = _Observation({"frame": FRAME,
                        "instruction": specs.Array([], object)})
    spec = types.trajectory_spec(2, types.observation_spec(env), 3, ())
    zeros = types.zero_trajectories(spec, 2)
    assert zeros.env_outputs.observation["frame"].shape == (2, 4, 24, 24, 3)
    assert zeros.env_outputs.observation["frame"].dtype == np.uint8
    assert zeros.env_outputs.observation["instruction"].dtype == object
    assert zeros.agent_outputs.policy_logits.shape == (2, 4, 2)
    assert not zeros.env_outputs.observation["frame"].any()
    # Both unrolls filled from the environment fit the spec as tensors.
    step = env.reset()
    for i in range(2):
        for t in range(4):
            observation = zeros.env_outputs.observation
            observation["frame"][i, t] = step.observation
            observation["instruction"][i, t] = b"pick red"
            zeros.env_outputs.reward[i, t] = step.reward or 0.0
            zeros.agent_outputs.action[i, t] = t % 2
            step = env.step(t % 2)
    tensors = tf.nest.map_structure(tf.convert_to_tensor, zeros)
    for s, x in zip(tf.nest.flatten(types.batch_spec(spec, 2)),
                    tf.nest.flatten(tensors)):
        assert s.is_compatible_with(x), (s, x)
