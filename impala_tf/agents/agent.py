"""The IMPALA agent: torso, optional instruction encoder, LSTM core, heads.

Shapes are time-major: an unroll takes [T, B, ...] tensors. One step of the
core input is concat(torso(frame) [256], one_hot(prev_action) [A],
clip(prev_reward, -1, 1) [1], instruction encoding [64] if enabled). With
`use_lstm=True` an LSTM (256) reads it, its state reset to zeros wherever
`done` is true *before* that step is processed; with `use_lstm=False` the
heads read it directly (the paper's feed-forward Atari agent) and the state is
the empty tuple (). Heads: linear policy logits [A] and linear baseline [].

Both `step` (acting, [B]) and `unroll` (learning, [T, B]) run eagerly or
inside `tf.function` with fixed input signatures; `state_spec` gives the
signature of the recurrent state.
"""

import sonnet as snt
import tensorflow as tf

from impala_tf import types
from impala_tf.agents import instruction as instruction_lib
from impala_tf.agents import torsos


def _merge_time_batch(x):
    """[T, B, ...] -> [T*B, ...], keeping the static trailing shape."""
    x = tf.convert_to_tensor(x)
    t, b = x.shape[0], x.shape[1]
    y = tf.reshape(x, tf.concat([[-1], tf.shape(x)[2:]], axis=0))
    lead = t * b if t is not None and b is not None else None
    y.set_shape([lead] + x.shape[2:].as_list())
    return y


def _split_time_batch(y, t, b, static_t, static_b):
    """[T*B, ...] -> [T, B, ...]; t, b dynamic int32 scalars."""
    x = tf.reshape(y, tf.concat([[t, b], tf.shape(y)[1:]], axis=0))
    x.set_shape([static_t, static_b] + y.shape[1:].as_list())
    return x


def _as_lstm_state(state):
    """Accepts an LSTMState or any (hidden, cell) pair."""
    if isinstance(state, snt.LSTMState):
        return state
    hidden, cell = state
    return snt.LSTMState(hidden=hidden, cell=cell)


class ImpalaAgent(snt.Module):
    """IMPALA actor-critic network (Espeholt et al. 2018, Fig. 3).

    Variables are created on the first `step` or `unroll` call (Sonnet builds
    lazily); `trainable_variables` is empty before that.
    """

    def __init__(self, num_actions, torso="shallow", use_lstm=True,
                 use_instruction=False, lstm_size=256, name="impala_agent"):
        """Builds the agent's modules (no variables yet).

        Args:
          num_actions: number of discrete actions A.
          torso: 'shallow' or 'deep'.
          use_lstm: LSTM core if True, feed-forward if False.
          use_instruction: if True, observations must hold 'instruction'
            (tf.string) and its encoding joins the core input.
          lstm_size: LSTM units (256 in the paper).
          name: module name.
        """
        super().__init__(name=name)
        self._num_actions = int(num_actions)
        self._torso_name = torso
        self._use_lstm = bool(use_lstm)
        self._use_instruction = bool(use_instruction)
        self._lstm_size = int(lstm_size)
        self._torso = torsos.make_torso(torso)
        self._instruction = (instruction_lib.InstructionEncoder()
                             if use_instruction else None)
        self._core = (snt.LSTM(self._lstm_size, name="core_lstm")
                      if use_lstm else None)
        self._policy = snt.Linear(self._num_actions, name="policy_logits")
        self._baseline = snt.Linear(1, name="baseline")

    @property
    def num_actions(self):
        return self._num_actions

    @property
    def use_lstm(self):
        return self._use_lstm

    @property
    def use_instruction(self):
        return self._use_instruction

    def initial_state(self, batch_size):
        """The state at the start of an episode.

        Args:
          batch_size: python int or int32 scalar tensor B.

        Returns:
          snt.LSTMState(hidden=float32 [B, lstm_size], cell=float32
          [B, lstm_size]) of zeros, or () without an LSTM. No gradient.
        """
        if not self._use_lstm:
            return ()
        return self._core.initial_state(batch_size)

    def state_spec(self, batch_size=None):
        """tf.TensorSpec nest matching `initial_state(batch_size)` (for input
        signatures); () without an LSTM."""
        if not self._use_lstm:
            return ()
        spec = tf.TensorSpec([batch_size, self._lstm_size], tf.float32)
        return snt.LSTMState(hidden=spec, cell=spec)

    # -- Shared pieces, on a flat batch [N, ...]. ---------------------------

    def _core_input(self, prev_action, reward, observation):
        """[N] int, [N] float, {frame [N,H,W,C], instruction [N]} -> [N, D]."""
        parts = [
            self._torso(observation["frame"]),
            tf.one_hot(prev_action, self._num_actions, dtype=tf.float32),
            tf.expand_dims(
                tf.clip_by_value(tf.cast(reward, tf.float32), -1.0, 1.0), -1),
        ]
        if self._use_instruction:
            if "instruction" not in observation:
                raise ValueError("use_instruction=True but the observation "
                                 "has no 'instruction' entry.")
            parts.append(self._instruction(observation["instruction"]))
        return tf.concat(parts, axis=-1)

    def _heads(self, x):
        """[N, D] -> (logits float32 [N, A], baseline float32 [N], action int32
        [N] sampled from the logits)."""
        logits = self._policy(x)
        baseline = tf.squeeze(self._baseline(x), axis=-1)
        action = tf.squeeze(
            tf.random.categorical(logits, 1, dtype=tf.int32), axis=-1)
        return logits, baseline, action

    def _core_step(self, x, done, state, initial_state):
        """One LSTM step with the state reset where `done` [B] is true."""
        state = tf.nest.map_structure(
            lambda init, s: tf.where(done[:, None], init, s), initial_state,
            state)
        return self._core(x, state)

    # -- Public API. ---------------------------------------------------------

    def step(self, prev_action, env_output, state):
        """One acting step for a batch of B environments.

        Args:
          prev_action: int32 [B], the action that led to this observation.
          env_output: types.EnvOutput(reward float32 [B] (the reward that
            came with this observation), done bool [B] (this observation
            starts a new episode), observation {'frame': uint8 [B, H, W, C],
            'instruction': tf.string [B] if use_instruction}).
          state: as `initial_state(B)` (any (hidden, cell) pair works).

        Returns:
          (types.AgentOutput(action int32 [B] sampled from the policy,
           policy_logits float32 [B, A], baseline float32 [B]), new_state).
          Logits, baseline and new_state are differentiable with respect to
          the agent's variables (and to `state`); the sampled action is not.
        """
        x = self._core_input(prev_action, env_output.reward,
                             env_output.observation)
        if self._use_lstm:
            state = _as_lstm_state(state)
            done = tf.cast(env_output.done, tf.bool)
            initial = self._core.initial_state(tf.shape(done)[0])
            x, state = self._core_step(x, done, state, initial)
        else:
            state = ()
        logits, baseline, action = self._heads(x)
        return types.AgentOutput(action, logits, baseline), state

    def unroll(self, prev_actions, env_outputs, state):
        """Runs the agent over T steps of B trajectories (the learner's pass).

        The torso, instruction encoder and heads see all T*B steps at once;
        the LSTM runs over time (a static Python loop when T is known
        statically, otherwise a tf.while_loop), reset to zeros wherever
        done[t] is true before step t.

        Args:
          prev_actions: int32 [T, B]; prev_actions[t] led to observation t.
          env_outputs: types.EnvOutput(reward float32 [T, B], done bool
            [T, B], observation {'frame': uint8 [T, B, H, W, C],
            'instruction': tf.string [T, B] if use_instruction}).
          state: the core state before step 0, as `initial_state(B)`.

        Returns:
          (types.AgentOutput(action int32 [T, B] sampled (no gradient),
           policy_logits float32 [T, B, A], baseline float32 [T, B]),
           final_state after step T-1). Logits and baselines carry gradient to
          every variable of the agent.
        """
        prev_actions = tf.convert_to_tensor(prev_actions)
        static_t, static_b = prev_actions.shape[0], prev_actions.shape[1]
        t_dyn, b_dyn = tf.shape(prev_actions)[0], tf.shape(prev_actions)[1]

        observation = {k: _merge_time_batch(v)
                       for k, v in env_outputs.observation.items()}
        x = self._core_input(_merge_time_batch(prev_actions),
                             _merge_time_batch(env_outputs.reward),
                             observation)

        if self._use_lstm:
            state = _as_lstm_state(state)
            inputs = _split_time_batch(x, t_dyn, b_dyn, static_t, static_b)
            done = tf.cast(env_outputs.done, tf.bool)
            if static_t is not None:
                outputs, state = self._static_core(inputs, done, state,
                                                   static_t)
            else:
                outputs, state = self._dynamic_core(inputs, done, state)
            x = _merge_time_batch(outputs)
        else:
            state = ()

        logits, baseline, action = self._heads(x)
        split = lambda y: _split_time_batch(y, t_dyn, b_dyn, static_t,
                                            static_b)
        return (types.AgentOutput(split(action), split(logits),
                                  split(baseline)),
                state)

    def _static_core(self, inputs, done, state, num_steps):
        """Python loop over a static T. inputs [T, B, D], done [T, B]."""
        initial = self._core.initial_state(tf.shape(done)[1])
        outputs = []
        for x_t, d_t in zip(tf.unstack(inputs, num=num_steps),
                            tf.unstack(done, num=num_steps)):
            out, state = self._core_step(x_t, d_t, state, initial)
            outputs.append(out)
        return tf.stack(outputs), state

    def _dynamic_core(self, inputs, done, state):
        """tf.while_loop over a dynamic T. inputs [T, B, D], done [T, B]."""
        instruction_lib.ensure_lstm_built(self._core, inputs.shape[-1])
        num_steps = tf.shape(inputs)[0]
        initial = self._core.initial_state(tf.shape(done)[1])
        outputs = tf.TensorArray(tf.float32, size=num_steps,
                                 element_shape=[None, self._lstm_size])

        def body(t, state, outputs):
            out, state = self._core_step(inputs[t], done[t], state, initial)
            return t + 1, state, outputs.write(t, out)

        state_shapes = tf.nest.map_structure(
            lambda _: tf.TensorShape([None, self._lstm_size]), state)
        _, state, outputs = tf.while_loop(
            lambda t, *_: t < num_steps, body,
            (tf.constant(0), state, outputs),
            shape_invariants=(tf.TensorShape([]), state_shapes,
                              tf.TensorShape(None)))
        stacked = outputs.stack()
        stacked.set_shape([None, inputs.shape[1], self._lstm_size])
        return stacked, state
