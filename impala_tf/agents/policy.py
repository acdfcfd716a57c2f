"""The agent as actors call it: one policy step on a batch of N observations.

Inference is one concrete function on flat arguments (`FlatPolicy`; a batch
of 32 costs ~3 ms on one core, ~0.1 ms per observation against ~1.1 ms for a
batch of 1, benchmarks/README.md). `make_policy_step` is the plain nested
`tf.function` (evaluation, reference in tests). `create_variables` and
`variable_specs` give what a transport needs to know about the weights
before anything acts.
"""

import tensorflow as tf

from impala_tf import types


def create_variables(agent, obs_spec):
    """Creates `agent`'s variables with one eager step on a batch of 1
    zeros (no environment needed); returns `agent`.

    obs_spec: {'frame': TensorSpec [H, W, C] uint8, ['instruction': ...]}.
    """
    obs = {k: tf.zeros([1] + v.shape.as_list(), v.dtype)
           for k, v in obs_spec.items()}
    agent.step(tf.zeros([1], tf.int32),
               types.EnvOutput(tf.zeros([1], tf.float32),
                               tf.zeros([1], tf.bool), obs),
               agent.initial_state(1))
    return agent


def variable_specs(agent):
    """[(tf.DType, tf.TensorShape)] of `agent.trainable_variables`, in their
    fixed order (what a transport reads and writes)."""
    return [(v.dtype, v.shape) for v in agent.trainable_variables]


def make_policy_step(agent, obs_spec, batch_size):
    """A `tf.function` (prev_action [N], EnvOutput [N], state) -> outputs."""
    env_sig = types.EnvOutput(
        reward=tf.TensorSpec([batch_size], tf.float32),
        done=tf.TensorSpec([batch_size], tf.bool),
        observation={k: tf.TensorSpec([batch_size] + v.shape.as_list(),
                                      v.dtype) for k, v in obs_spec.items()})
    sig = (tf.TensorSpec([batch_size], tf.int32), env_sig,
           agent.state_spec(batch_size))
    return tf.function(agent.step, input_signature=sig)


class FlatPolicy:
    """`agent.step` for a fixed batch N as one concrete function on flat
    arguments (no nest matching per call, the cheapest way into TF).

    `__call__(prev_action, reward, done, observation, state)` takes numpy
    arrays or tensors: int32 [N], float32 [N], bool [N], a dict of [N, ...]
    observations (keys of `obs_spec`) and the state nest (as
    `agent.initial_state(N)`); it returns (action int32 [N], policy_logits
    float32 [N, A], baseline float32 [N]) as numpy arrays and the new state
    as tensors (fed back as they are). No gradient.
    """

    def __init__(self, agent, obs_spec, batch_size):
        n = batch_size
        self._keys = list(obs_spec)
        self._state_spec = agent.state_spec(n)
        num_obs = len(self._keys)

        def flat_step(prev_action, reward, done, *rest):
            obs = dict(zip(self._keys, rest[:num_obs]))
            state = tf.nest.pack_sequence_as(self._state_spec,
                                             list(rest[num_obs:]))
            out, state = agent.step(
                prev_action, types.EnvOutput(reward, done, obs), state)
            return (out.action, out.policy_logits,
                    out.baseline) + tuple(tf.nest.flatten(state))

        sig = ([tf.TensorSpec([n], tf.int32), tf.TensorSpec([n], tf.float32),
                tf.TensorSpec([n], tf.bool)]
               + [tf.TensorSpec([n] + obs_spec[k].shape.as_list(),
                                obs_spec[k].dtype) for k in self._keys]
               + tf.nest.flatten(self._state_spec))
        self._fn = tf.function(
            flat_step, input_signature=sig).get_concrete_function()

    def __call__(self, prev_action, reward, done, observation, state):
        args = [prev_action, reward, done]
        args += [observation[k] for k in self._keys]
        args += tf.nest.flatten(state)
        outs = self._fn(*args)
        action, logits, baseline = (x.numpy() for x in outs[:3])
        state = tf.nest.pack_sequence_as(self._state_spec, list(outs[3:]))
        return action, logits, baseline, state
