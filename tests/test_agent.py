"""Tests for impala_tf.agents.agent (`agents.make_agent`, `ImpalaAgent`):
shapes, parameter counts, resets, gradients, tf.function and SavedModel."""

import numpy as np
import pytest
import sonnet as snt
import tensorflow as tf

from impala_tf import agents
from impala_tf import types

WORDS = ["go", "to", "the", "red", "apple", "pick", "up", "blue", "key"]


def _instructions(rng, shape):
    flat = []
    for _ in range(int(np.prod(shape))):
        n = rng.integers(0, 6)  # Includes empty instructions.
        flat.append(" ".join(rng.choice(WORDS, size=n)))
    return tf.constant(np.array(flat, dtype=object).reshape(shape))


def _env_outputs(rng, lead_shape, frame_shape, use_instruction, done=None):
    """Random EnvOutput with leading shape [B] or [T, B]."""
    observation = {"frame": tf.constant(
        rng.integers(0, 256, size=tuple(lead_shape) + tuple(frame_shape)),
        tf.uint8)}
    if use_instruction:
        observation["instruction"] = _instructions(rng, lead_shape)
    if done is None:
        done = np.zeros(lead_shape, bool)
    reward = rng.normal(scale=2.0, size=lead_shape).astype(np.float32)
    return types.EnvOutput(tf.constant(reward), tf.constant(done), observation)


def _actions(rng, lead_shape, num_actions):
    return tf.constant(rng.integers(0, num_actions, size=lead_shape), tf.int32)


def _random_state(rng, agent, batch_size):
    return tf.nest.map_structure(
        lambda s: tf.constant(rng.normal(size=s.shape).astype(np.float32)),
        agent.initial_state(batch_size))


def _num_params(agent):
    return sum(int(np.prod(v.shape)) for v in agent.trainable_variables)


def _slice_env(env_outputs, t):
    return tf.nest.map_structure(lambda x: x[t], env_outputs)


@pytest.mark.parametrize("name,expected", [("deep", 1628010),
                                           ("shallow", 1230426)])
def test_parameter_counts_dmlab(name, expected):
    rng = np.random.default_rng(0)
    agent = agents.make_agent(name, 9, use_lstm=True, use_instruction=True)
    agent.step(_actions(rng, [1], 9),
               _env_outputs(rng, [1], (72, 96, 3), True),
               agent.initial_state(1))
    assert _num_params(agent) == expected


@pytest.mark.parametrize("torso,use_lstm,use_instruction,frame_shape,"
                         "num_actions", [
    ("shallow", True, False, (84, 84, 4), 6),
    ("shallow", False, True, (72, 96, 3), 18),
    ("deep", False, False, (40, 40, 3), 4),
    ("deep", True, True, (72, 96, 3), 9),
])
def test_output_shapes(torso, use_lstm, use_instruction, frame_shape,
                       num_actions):
    rng = np.random.default_rng(1)
    agent = agents.ImpalaAgent(num_actions, torso=torso, use_lstm=use_lstm,
                               use_instruction=use_instruction)
    T, B = 3, 2
    state = agent.initial_state(B)
    if use_lstm:
        for s in tf.nest.flatten(state):
            assert s.shape == (B, 256) and s.dtype == tf.float32
    else:
        assert state == ()

    out, new_state = agent.step(
        _actions(rng, [B], num_actions),
        _env_outputs(rng, [B], frame_shape, use_instruction), state)
    assert out.action.shape == (B,) and out.action.dtype == tf.int32
    assert out.policy_logits.shape == (B, num_actions)
    assert out.policy_logits.dtype == tf.float32
    assert out.baseline.shape == (B,) and out.baseline.dtype == tf.float32
    assert np.all((out.action.numpy() >= 0)
                  & (out.action.numpy() < num_actions))
    tf.nest.assert_same_structure(new_state, state)

    out, final_state = agent.unroll(
        _actions(rng, [T, B], num_actions),
        _env_outputs(rng, [T, B], frame_shape, use_instruction), state)
    assert out.action.shape == (T, B) and out.action.dtype == tf.int32
    assert out.policy_logits.shape == (T, B, num_actions)
    assert out.baseline.shape == (T, B)
    tf.nest.assert_same_structure(final_state, state)
    for x in tf.nest.flatten(out) + tf.nest.flatten(final_state):
        assert np.all(np.isfinite(x.numpy()))


def test_feed_forward_ignores_state_and_is_deterministic_per_step():
    rng = np.random.default_rng(2)
    agent = agents.make_agent("shallow", 5, use_lstm=False)
    assert agent.initial_state(3) == ()
    assert agent.state_spec() == ()
    T, B = 4, 3
    actions = _actions(rng, [T, B], 5)
    env = _env_outputs(rng, [T, B], (84, 84, 4), False)
    out, state = agent.unroll(actions, env, ())
    assert state == ()
    for t in range(T):
        step_out, _ = agent.step(actions[t], _slice_env(env, t), ())
        np.testing.assert_allclose(step_out.policy_logits,
                                   out.policy_logits[t], atol=1e-5)


def test_state_reset_on_done():
    rng = np.random.default_rng(3)
    agent = agents.make_agent("shallow", 4, use_instruction=True)
    T, B = 4, 2
    done = np.zeros([T, B], bool)
    done[2, 0] = True
    actions = _actions(rng, [T, B], 4)
    env = _env_outputs(rng, [T, B], (40, 40, 3), True, done=done)
    state = _random_state(rng, agent, B)
    out, _ = agent.unroll(actions, env, state)

    # Batch entry 0 at t=2 must equal a step from a fresh initial state.
    fresh, _ = agent.step(actions[2], _slice_env(env, 2),
                          agent.initial_state(B))
    np.testing.assert_allclose(out.policy_logits[2, 0], fresh.policy_logits[0],
                               atol=1e-5)
    np.testing.assert_allclose(out.baseline[2, 0], fresh.baseline[0],
                               atol=1e-5)
    # Entry 1 was not reset: it must differ from the fresh-state output.
    assert not np.allclose(out.policy_logits[2, 1], fresh.policy_logits[1],
                           atol=1e-4)
    # A done at step 0 ignores the incoming state entirely.
    done0 = np.ones([1, B], bool)
    env0 = _env_outputs(rng, [1, B], (40, 40, 3), True, done=done0)
    a0 = _actions(rng, [1, B], 4)
    out_a, _ = agent.unroll(a0, env0, state)
    out_b, _ = agent.unroll(a0, env0, agent.initial_state(B))
    np.testing.assert_allclose(out_a.policy_logits, out_b.policy_logits,
                               atol=1e-6)


@pytest.mark.parametrize("torso,use_instruction", [("shallow", True),
                                                   ("deep", False)])
def test_step_matches_unroll(torso, use_instruction):
    rng = np.random.default_rng(4)
    agent = agents.make_agent(torso, 7, use_instruction=use_instruction)
    T, B = 5, 2
    done = np.zeros([T, B], bool)
    done[2, 1] = True
    done[3, 0] = True
    actions = _actions(rng, [T, B], 7)
    env = _env_outputs(rng, [T, B], (72, 96, 3), use_instruction, done=done)
    state0 = _random_state(rng, agent, B)

    out, final_state = agent.unroll(actions, env, state0)
    state = state0
    for t in range(T):
        step_out, state = agent.step(actions[t], _slice_env(env, t), state)
        np.testing.assert_allclose(step_out.policy_logits,
                                   out.policy_logits[t], atol=1e-5, rtol=1e-5)
        np.testing.assert_allclose(step_out.baseline, out.baseline[t],
                                   atol=1e-5, rtol=1e-5)
    for a, b in zip(tf.nest.flatten(state), tf.nest.flatten(final_state)):
        np.testing.assert_allclose(a, b, atol=1e-5, rtol=1e-5)


def test_tf_function_signatures_static_and_dynamic_unroll():
    """First calls inside tf.function (variables created there), fixed
    signatures, static-T and dynamic-T unrolls agree with eager."""
    rng = np.random.default_rng(5)
    A, H, W, C = 9, 72, 96, 3
    agent = agents.make_agent("shallow", A, use_instruction=True)
    T, B = 3, 2

    def env_spec(lead):
        return types.EnvOutput(
            tf.TensorSpec(lead, tf.float32), tf.TensorSpec(lead, tf.bool),
            {"frame": tf.TensorSpec(lead + [H, W, C], tf.uint8),
             "instruction": tf.TensorSpec(lead, tf.string)})

    # Dynamic T first: the LSTM variables get created before its while_loop.
    dynamic_unroll = tf.function(agent.unroll, input_signature=[
        tf.TensorSpec([None, None], tf.int32), env_spec([None, None]),
        agent.state_spec()])
    static_unroll = tf.function(agent.unroll, input_signature=[
        tf.TensorSpec([T, None], tf.int32), env_spec([T, None]),
        agent.state_spec()])
    step = tf.function(agent.step, input_signature=[
        tf.TensorSpec([None], tf.int32), env_spec([None]), agent.state_spec()])
    initial_state = tf.function(
        agent.initial_state, input_signature=[tf.TensorSpec([], tf.int32)])

    done = np.zeros([T, B], bool)
    done[1, 0] = True
    actions = _actions(rng, [T, B], A)
    env = _env_outputs(rng, [T, B], (H, W, C), True, done=done)
    state0 = _random_state(rng, agent, B)

    dyn_out, dyn_state = dynamic_unroll(actions, env, state0)
    st_out, st_state = static_unroll(actions, env, state0)
    eager_out, eager_state = agent.unroll(actions, env, state0)
    for out in (dyn_out, st_out):
        np.testing.assert_allclose(out.policy_logits, eager_out.policy_logits,
                                   atol=1e-5)
        np.testing.assert_allclose(out.baseline, eager_out.baseline, atol=1e-5)
    for s in (dyn_state, st_state):
        for a, b in zip(tf.nest.flatten(s), tf.nest.flatten(eager_state)):
            np.testing.assert_allclose(a, b, atol=1e-5)

    state = initial_state(tf.constant(B))
    step_out, state = step(actions[0], _slice_env(env, 0), state)
    assert step_out.policy_logits.shape == (B, A)
    assert isinstance(state, snt.LSTMState)


def test_plain_tuple_state_accepted():
    rng = np.random.default_rng(6)
    agent = agents.make_agent("shallow", 3)
    B = 2
    env = _env_outputs(rng, [B], (40, 40, 3), False)
    actions = _actions(rng, [B], 3)
    state = _random_state(rng, agent, B)
    out_a, _ = agent.step(actions, env, state)
    out_b, _ = agent.step(actions, env, (state.hidden, state.cell))
    np.testing.assert_allclose(out_a.policy_logits, out_b.policy_logits)


@pytest.mark.parametrize("torso,use_lstm,use_instruction", [
    ("shallow", True, True),
    ("shallow", False, False),
    ("deep", True, True),
    ("deep", False, False),
    ("deep", False, True),
])
def test_gradients_reach_every_variable(torso, use_lstm, use_instruction):
    rng = np.random.default_rng(7)
    agent = agents.make_agent(torso, 5, use_lstm=use_lstm,
                              use_instruction=use_instruction)
    T, B = 3, 2
    done = np.zeros([T, B], bool)
    done[1, 1] = True
    actions = _actions(rng, [T, B], 5)
    env = _env_outputs(rng, [T, B], (40, 40, 3), use_instruction, done=done)
    if use_instruction:  # Make sure some words are present.
        env.observation["instruction"] = tf.constant(
            [["go to the red apple", ""], ["pick up", "blue key"],
             ["red", "the apple"]])
    weights = tf.constant(rng.normal(size=[T, B, 5]).astype(np.float32))
    with tf.GradientTape() as tape:
        out, _ = agent.unroll(actions, env, agent.initial_state(B))
        loss = (tf.reduce_sum(out.policy_logits * weights)
                + tf.reduce_sum(tf.square(out.baseline)))
    variables = agent.trainable_variables
    grads = tape.gradient(loss, variables)
    assert len(variables) > 0
    for v, g in zip(variables, grads):
        assert g is not None, v.name
        g = tf.convert_to_tensor(g).numpy()
        assert np.all(np.isfinite(g)), v.name
        assert np.any(g != 0), v.name


def test_missing_instruction_and_unknown_torso_raise():
    rng = np.random.default_rng(8)
    agent = agents.make_agent("shallow", 3, use_instruction=True)
    with pytest.raises(ValueError):
        agent.step(_actions(rng, [1], 3),
                   _env_outputs(rng, [1], (40, 40, 3), False),
                   agent.initial_state(1))
    with pytest.raises(ValueError):
        agents.make_agent("huge", 3)
    with pytest.raises(ValueError):
        agents.ImpalaAgent(3, torso="huge")


def test_saved_model_export_of_step(tmp_path):
    rng = np.random.default_rng(9)
    A, B = 4, 2
    agent = agents.make_agent("shallow", A, use_instruction=True)
    env_spec = types.EnvOutput(
        tf.TensorSpec([None], tf.float32), tf.TensorSpec([None], tf.bool),
        {"frame": tf.TensorSpec([None, 40, 40, 3], tf.uint8),
         "instruction": tf.TensorSpec([None], tf.string)})
    module = tf.Module()
    module.agent = agent
    module.step = tf.function(agent.step, input_signature=[
        tf.TensorSpec([None], tf.int32), env_spec, agent.state_spec()])
    module.initial_state = tf.function(
        agent.initial_state, input_signature=[tf.TensorSpec([], tf.int32)])
    actions = _actions(rng, [B], A)
    env = _env_outputs(rng, [B], (40, 40, 3), True)
    state = _random_state(rng, agent, B)
    expected, expected_state = module.step(actions, env, state)
    tf.saved_model.save(module, str(tmp_path / "agent"))

    loaded = tf.saved_model.load(str(tmp_path / "agent"))
    out, new_state = loaded.step(actions, env, state)
    np.testing.assert_allclose(out.policy_logits, expected.policy_logits,
                               atol=1e-6)
    np.testing.assert_allclose(out.baseline, expected.baseline, atol=1e-6)
    for a, b in zip(tf.nest.flatten(new_state),
                    tf.nest.flatten(expected_state)):
        np.testing.assert_allclose(a, b, atol=1e-6)
    init = loaded.initial_state(tf.constant(3))
    assert [s.shape for s in tf.nest.flatten(init)] == [(3, 256), (3, 256)]
