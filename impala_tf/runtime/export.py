"""Export the policy as a SavedModel that runs without impala_tf or Sonnet.

The SavedModel has two functions:

  initial_state(batch_size: int32 []) -> state, a tuple of float32 [B, 256]
      tensors (LSTM hidden, cell) or () for a feed-forward agent;
  step(observation, prev_action, reward, done, state) -> dict with
      'action' int32 [B] (sampled), 'policy_logits' float32 [B, A],
      'baseline' float32 [B], 'state' (same structure as the input state).

`observation` is a dict: 'frame' uint8 [B, H, W, C] and, for agents with an
instruction encoder, 'instruction' string [B]. `prev_action` int32 [B] is the
previous action (0 at the first step), `reward` float32 [B] the previous
reward, `done` bool [B] true at the first step of an episode (it resets the
LSTM state). Load with `tf.saved_model.load(path)`.
"""

import tensorflow as tf

from impala_tf import types


class ExportedPolicy(tf.Module):
    """A `tf.Module` wrapping an agent's step with flat input signatures."""

    def __init__(self, agent, observation_spec):
        super().__init__(name="impala_policy")
        self._agent = agent
        self.variables_list = list(agent.variables)
        obs_sig = {k: tf.TensorSpec([None] + s.shape.as_list(), s.dtype,
                                    name=k)
                   for k, s in observation_spec.items()}
        state_sig = tuple(tf.TensorSpec(s.shape, s.dtype, name=f"state_{i}")
                          for i, s in enumerate(
                              tf.nest.flatten(agent.state_spec(None))))
        self._state_structure = agent.state_spec(None)
        self.step = tf.function(self._step, input_signature=(
            obs_sig, tf.TensorSpec([None], tf.int32, name="prev_action"),
            tf.TensorSpec([None], tf.float32, name="reward"),
            tf.TensorSpec([None], tf.bool, name="done"), state_sig))
        self.initial_state = tf.function(
            self._initial_state,
            input_signature=(tf.TensorSpec([], tf.int32,
                                           name="batch_size"),))

    def _initial_state(self, batch_size):
        return tuple(tf.nest.flatten(self._agent.initial_state(batch_size)))

    def _step(self, observation, prev_action, reward, done, state):
        state = tf.nest.pack_sequence_as(self._state_structure, list(state))
        out, new_state = self._agent.step(
            prev_action, types.EnvOutput(reward, done, dict(observation)),
            state)
        return {"action": out.action, "policy_logits": out.policy_logits,
                "baseline": out.baseline,
                "state": tuple(tf.nest.flatten(new_state))}


def export_policy(agent, observation_spec, export_dir):
    """Writes the SavedModel; `agent` must have its variables built."""
    policy = ExportedPolicy(agent, observation_spec)
    tf.saved_model.save(policy, export_dir)
    return export_dir
