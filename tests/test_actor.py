"""The actor's one entry point (`actor.run_actor`) with a real environment.

The transport is `testing.NullTransport` (fixed weights, unrolls kept), so
no learner or server is needed; `actor.run_local_actor` and
`actor.run_remote_actor` only build a transport for `run_actor`, and the
trainer and distributed tests run them against real learners.
"""

import numpy as np
import pytest
import tensorflow as tf

from impala_tf.runtime import actor as actor_lib
from impala_tf import agents
from impala_tf.agents import policy
from impala_tf import testing
from impala_tf.envs import registry

TOY = "impala_tf.envs.toy:colour_choice"
T, N = 4, 3


def _config(level=TOY, use_lstm=False):
    level_set = registry.parse_level_name(level)
    obs = {"frame": tf.TensorSpec([24, 24, 3], tf.uint8)}
    return actor_lib.ActorConfig(
        level_set, agents.AgentConfig("shallow", 2, use_lstm, False), obs,
        unroll_length=T, envs_per_actor=N, queue_capacity=N, seed=5)


def _weights(agent):
    return [np.full(v.shape, 0.01, v.dtype.as_numpy_dtype)
            for v in agent.trainable_variables]


@pytest.mark.parametrize("use_lstm", [False, True])
def test_run_actor_sends_unrolls_until_the_learner_is_done(use_lstm):
    config = _config(use_lstm=use_lstm)
    agent = actor_lib.build_agent(config)
    assert policy.variable_specs(agent)  # Created before any transport.
    transport = testing.NullTransport(_weights(agent), version=9,
                                      stop_after=3)
    frames = actor_lib.run_actor(config, 2, agent, transport)
    assert transport.enqueued == 3 and transport.trajectories == 3 * N
    assert frames == 3 * N * T
    assert transport.closed
    last = transport.last
    spec = actor_lib.trajectory_spec(config, agent)
    for x, s in zip(tf.nest.flatten(last), tf.nest.flatten(spec)):
        assert x.shape == (N,) + tuple(s.shape.as_list())
    assert (last.policy_version == 9).all()
    assert set(last.agent_outputs.action[:, 1:].ravel()) <= {0, 1}
    # The weights pulled are the ones acted with.
    for v, w in zip(agent.trainable_variables, transport.weights):
        np.testing.assert_array_equal(v.numpy(), w)


def test_run_actor_stops_when_asked_and_closes_its_transport():
    config = _config()
    agent = actor_lib.build_agent(config)
    transport = testing.NullTransport(_weights(agent))
    frames = actor_lib.run_actor(
        config, 0, agent, transport,
        should_stop=lambda: transport.enqueued >= 2)
    assert transport.enqueued == 2 and frames == 2 * N * T
    assert transport.closed


def test_run_actor_closes_its_transport_when_the_environment_raises():
    config = _config(level="tests.faulty_envs:broken_env")
    agent = actor_lib.build_agent(config)
    transport = testing.NullTransport(_weights(agent))
    with pytest.raises(Exception, match="no such device"):
        actor_lib.run_actor(config, 0, agent, transport)
    assert transport.closed and transport.enqueued == 0
