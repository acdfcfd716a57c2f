"""Batched actor inference acts like unbatched inference.

An actor steps N environments in lock-step and runs the policy once per step
on the batch (`policy.FlatPolicy`). The policy of each environment must be
the one it would get alone: the same logits and baseline (so the same action
distribution), the same recurrent state, and the trajectories must record,
at every step, the outputs the network gives on the recorded inputs.
"""

import numpy as np
import pytest
import tensorflow as tf

from impala_tf.runtime import actor as actor_lib
from impala_tf import agents
from impala_tf.agents import policy
from impala_tf import testing
from impala_tf import types
from impala_tf.envs import batch as env_batch
from impala_tf.envs import registry

TOY = "impala_tf.envs.toy:colour_choice"


def _agent(use_lstm, num_actions=5, frame=(24, 24, 3)):
    config = agents.AgentConfig("shallow", num_actions, use_lstm, False)
    agent = config.build()
    obs_spec = {"frame": tf.TensorSpec(frame, tf.uint8)}
    policy.FlatPolicy(agent, obs_spec, 1)  # Creates the variables.
    for i, v in enumerate(agent.trainable_variables):  # Non-trivial logits.
        v.assign(tf.random.stateless_normal(v.shape, [i, 7]) * 0.05)
    return config, agent, obs_spec


def _inputs(n, frame, num_actions, seed):
    rng = np.random.default_rng(seed)
    return (rng.integers(0, num_actions, n).astype(np.int32),
            rng.standard_normal(n).astype(np.float32),
            rng.random(n) < 0.3,
            {"frame": rng.integers(0, 256, (n,) + frame, np.uint8)})


@pytest.mark.parametrize("use_lstm", [False, True])
def test_batched_outputs_equal_one_at_a_time(use_lstm):
    _, agent, obs_spec = _agent(use_lstm)
    n = 8
    batched = policy.FlatPolicy(agent, obs_spec, n)
    single = policy.FlatPolicy(agent, obs_spec, 1)
    reference = policy.make_policy_step(agent, obs_spec, n)
    state = agent.initial_state(n)
    singles = [agent.initial_state(1) for _ in range(n)]
    for step in range(3):  # Recurrent state carried over steps.
        prev, reward, done, obs = _inputs(n, (24, 24, 3), 5, step)
        _, logits, baseline, new_state = batched(prev, reward, done, obs,
                                                 state)
        out, ref_state = reference(
            prev, types.EnvOutput(reward, done, obs), state)
        np.testing.assert_allclose(logits, out.policy_logits.numpy(),
                                   rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(baseline, out.baseline.numpy(),
                                   rtol=1e-5, atol=1e-5)
        for a, b in zip(tf.nest.flatten(new_state),
                        tf.nest.flatten(ref_state)):
            np.testing.assert_allclose(a.numpy(), b.numpy(), atol=1e-5)
        for i in range(n):
            _, l1, b1, singles[i] = single(
                prev[i:i + 1], reward[i:i + 1], done[i:i + 1],
                {"frame": obs["frame"][i:i + 1]}, singles[i])
            np.testing.assert_allclose(l1[0], logits[i], rtol=1e-4,
                                       atol=1e-4)
            np.testing.assert_allclose(b1[0], baseline[i], rtol=1e-4,
                                       atol=1e-4)
        state = new_state


def test_batched_actions_follow_the_unbatched_distribution():
    """Sampled actions: frequencies match softmax(unbatched logits)."""
    _, agent, obs_spec = _agent(False, num_actions=4)
    n, calls = 64, 60
    prev, reward, done, obs = _inputs(1, (24, 24, 3), 4, 3)
    _, logits, _, _ = policy.FlatPolicy(agent, obs_spec, 1)(
        prev, reward, done, obs, ())
    probs = tf.nn.softmax(logits[0]).numpy()
    assert probs.max() < 0.9  # A distribution worth testing.
    batched = policy.FlatPolicy(agent, obs_spec, n)
    tile = lambda x: np.repeat(x, n, axis=0)
    counts = np.zeros(4)
    for _ in range(calls):
        actions, _, _, _ = batched(tile(prev), tile(reward), tile(done),
                                   {"frame": tile(obs["frame"])}, ())
        assert actions.dtype == np.int32 and actions.shape == (n,)
        counts += np.bincount(actions, minlength=4)
    freq = counts / counts.sum()
    # 3840 samples: a standard error of at most 0.008 per action.
    np.testing.assert_allclose(freq, probs, atol=0.04)
    # The actions of different environments are not all the same draw.
    assert len(set(map(tuple, [batched(tile(prev), tile(reward), tile(done),
                                       {"frame": tile(obs["frame"])},
                                       ())[0][:8] for _ in range(3)]))) > 1


def _check_trajectories(actor, agent_config, obs_spec, weights, unrolls):
    """Every recorded step's logits are the network's on recorded inputs."""
    agent = agent_config.build()
    step = policy.FlatPolicy(agent, obs_spec, 1)
    for v, w in zip(agent.trainable_variables, weights):
        v.assign(w)
    previous_last = None
    for _ in range(unrolls):
        b = actor.unroll()
        b = tf.nest.map_structure(np.copy, b)
        assert (b.policy_version == 7).all()
        if previous_last is not None:  # Unrolls overlap by one step.
            for x, y in zip(previous_last,
                            tf.nest.flatten(b.env_outputs)
                            + tf.nest.flatten(b.agent_outputs)):
                np.testing.assert_array_equal(x, y[:, 0])
        previous_last = [x[:, -1] for x in tf.nest.flatten(b.env_outputs)
                         + tf.nest.flatten(b.agent_outputs)]
        n, steps = b.agent_outputs.action.shape
        for i in range(n):
            state = tf.nest.map_structure(lambda s: s[i:i + 1],
                                          b.agent_state)
            for t in range(1, steps):
                action, logits, baseline, state = step(
                    b.agent_outputs.action[i, t - 1:t],
                    b.env_outputs.reward[i, t - 1:t],
                    b.env_outputs.done[i, t - 1:t],
                    {k: v[i, t - 1:t]
                     for k, v in b.env_outputs.observation.items()}, state)
                np.testing.assert_allclose(
                    b.agent_outputs.policy_logits[i, t], logits[0],
                    rtol=1e-4, atol=1e-4)
                np.testing.assert_allclose(b.agent_outputs.baseline[i, t],
                                           baseline[0], rtol=1e-4,
                                           atol=1e-4)


@pytest.mark.parametrize("use_lstm", [False, True])
def test_actor_records_what_the_network_outputs(use_lstm):
    level_set = registry.parse_level_name(TOY)
    agent_config, agent, obs_spec = _agent(use_lstm, num_actions=2)
    weights = [v.numpy() for v in agent.trainable_variables]
    config = actor_lib.ActorConfig(level_set, agent_config, obs_spec,
                                   unroll_length=6, envs_per_actor=4,
                                   queue_capacity=4, seed=3)
    actor = actor_lib.Actor(config, 1, agent,
                           testing.NullTransport(weights, 7))
    _check_trajectories(actor, agent_config, obs_spec, weights, unrolls=4)
    actor.close()


def test_actor_with_vector_env_records_what_the_network_outputs():
    level_set = registry.parse_level_name("atari/pong")
    agent_config, agent, obs_spec = _agent(False, num_actions=6,
                                           frame=(84, 84, 4))
    weights = [v.numpy() for v in agent.trainable_variables]
    config = actor_lib.ActorConfig(level_set, agent_config, obs_spec,
                                   unroll_length=5, envs_per_actor=3,
                                   queue_capacity=3, seed=3,
                                   vector_env=True)
    built = []

    def make_environments(*args, **kwargs):
        built.append(env_batch.make(*args, **kwargs))
        return built[-1]

    actor = actor_lib.Actor(config, 0, agent,
                            testing.NullTransport(weights, 7),
                            make_environments)
    assert [type(b) for b in built] == [env_batch.AtariEnvironmentBatch]
    _check_trajectories(actor, agent_config, obs_spec, weights, unrolls=2)
    actor.close()
