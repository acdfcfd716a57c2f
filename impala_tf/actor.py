"""Actors: act in environments with a copy of the policy, ship unrolls.

One actor process owns `envs_per_actor` environments and steps them in
lock-step so that the policy runs once per step on a batch of observations
(the actor-side form of the paper's dynamic batching). Each unroll:

  1. read the latest weights (and their version) from the learner;
  2. act T steps in every environment, starting from the last step of the
     previous unroll (so each trajectory has T+1 steps, `types.Trajectory`);
  3. enqueue the N trajectories into the learner's queue in one call.

An actor never waits for the learner except through the queue's
back-pressure. The environments are one `envs.batch.EnvironmentBatch` (built
by `envs.batch.make`): it steps them, resets those whose episode ends (the
step is recorded with `done=True`, the reset observation and the final
reward, the release's convention) and keeps the games' returns.

Speed (benchmarks/README.md): inference is one concrete function on flat
arguments (`FlatPolicy`; a batch of 32 costs ~3 ms on one core, ~0.1 ms per
observation against ~1.1 ms for a batch of 1); environments write straight
into preallocated trajectory buffers; Atari games can be stepped as one
`envs.atari_vector.AtariBatch` (`ActorConfig.vector_env`, batched resize).
"""

import dataclasses

import numpy as np
import tensorflow as tf

from impala_tf import agents
from impala_tf import config as config_lib
from impala_tf import transport
from impala_tf import types
from impala_tf.envs import batch as env_batch


@dataclasses.dataclass(frozen=True)
class AgentConfig:
    """What it takes to rebuild the same network in any process."""
    torso: str
    num_actions: int
    use_lstm: bool
    use_instruction: bool

    def build(self):
        return agents.make_agent(
            self.torso, self.num_actions, use_lstm=self.use_lstm,
            use_instruction=self.use_instruction)


ActorConfig = config_lib.ActorConfig  # Where it is written: config.py.


def observation_spec(env):
    """The env's observation as {'frame': TensorSpec, ['instruction': ...]}.

    Raises ValueError with one sentence if the env does not fit IMPALA's
    agents (an image frame [H, W, C] of uint8, an optional string).
    """
    spec = env.observation_spec()
    if not isinstance(spec, dict):
        spec = {"frame": spec}
    if "frame" not in spec:
        raise ValueError(
            "the environment's observation must be an image array or a dict "
            f"with a 'frame' entry, got keys {sorted(spec)}")
    frame = spec["frame"]
    if len(frame.shape) != 3 or np.dtype(frame.dtype) != np.uint8:
        raise ValueError(
            "the environment's frame must be uint8 [H, W, C], got "
            f"{np.dtype(frame.dtype).name} {tuple(frame.shape)}")
    out = {"frame": tf.TensorSpec(frame.shape, tf.uint8)}
    if "instruction" in spec:
        out["instruction"] = tf.TensorSpec([], tf.string)
    return out


def num_actions_of(env):
    spec = env.action_spec()
    if not hasattr(spec, "num_values"):
        raise ValueError(
            "the environment's action spec must be a dm_env DiscreteArray, "
            f"got {type(spec).__name__}")
    return int(spec.num_values)


def trajectory_spec(agent_config, obs_spec, unroll_length, state_spec):
    """Nest of `tf.TensorSpec` for one trajectory (see `types.Trajectory`)."""
    n = unroll_length + 1
    timed = lambda s: tf.TensorSpec([n] + s.shape.as_list(), s.dtype)
    return types.Trajectory(
        level_id=tf.TensorSpec([], tf.int32),
        policy_version=tf.TensorSpec([], tf.int64),
        agent_state=tf.nest.map_structure(
            lambda s: tf.TensorSpec(s.shape[1:], s.dtype), state_spec),
        env_outputs=types.EnvOutput(
            reward=tf.TensorSpec([n], tf.float32),
            done=tf.TensorSpec([n], tf.bool),
            observation={k: timed(v) for k, v in obs_spec.items()}),
        agent_outputs=types.AgentOutput(
            action=tf.TensorSpec([n], tf.int32),
            policy_logits=tf.TensorSpec([n, agent_config.num_actions],
                                        tf.float32),
            baseline=tf.TensorSpec([n], tf.float32)),
        game_over=tf.TensorSpec([n], tf.bool),
        episode_return=tf.TensorSpec([n], tf.float32),
        episode_step=tf.TensorSpec([n], tf.int32))


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
    as tensors (fed back as they are).
    """

    def __init__(self, agent, obs_spec, batch_size):
        n = batch_size
        self._keys = list(obs_spec)
        self._state_spec = agent.state_spec(n)
        num_state = len(tf.nest.flatten(self._state_spec))
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
        self._num_state = num_state

    def __call__(self, prev_action, reward, done, observation, state):
        args = [prev_action, reward, done]
        args += [observation[k] for k in self._keys]
        args += tf.nest.flatten(state)
        outs = self._fn(*args)
        action, logits, baseline = (x.numpy() for x in outs[:3])
        state = tf.nest.pack_sequence_as(self._state_spec, list(outs[3:]))
        return action, logits, baseline, state


def _buffers(spec, n):
    """Zeroed numpy arrays for N trajectories: the nest of `spec`, [N, ...]."""
    return tf.nest.map_structure(
        lambda s: np.zeros([n] + s.shape.as_list(),
                           object if s.dtype == tf.string
                           else s.dtype.as_numpy_dtype), spec)


class Actor:
    """Acts with N environments and a local copy of the policy.

    Args:
      config: `ActorConfig`.
      task: this actor's index (seeds and level assignment derive from it).
      transport_client: an `ActorTransport` (or anything with `pull_weights`
        and `enqueue`).
      make_environments: `envs.batch.make` or a callable with its signature
        (the watchdog's `watchdog.guarded(envs.batch.make, heartbeat)`).

    `unroll()` fills preallocated numpy buffers (the trajectory nest, each
    [N, T+1, ...]) in place and returns them; they stay valid until the next
    `unroll()` (the transport copies them when it enqueues).
    """

    def __init__(self, config, task, transport_client,
                 make_environments=env_batch.make):
        self._config = config
        self._client = transport_client
        n = config.envs_per_actor
        level_set = config.level_set
        self._level_ids = np.array(
            [level_set.level_for(task * n + i) for i in range(n)], np.int32)
        seeds = [config.seed + 1000 * task + i for i in range(n)]
        self._envs = make_environments(level_set, self._level_ids, seeds,
                                       vector_env=config.vector_env)
        self._agent = config.agent.build()
        self._policy = FlatPolicy(self._agent, config.observation_spec, n)
        state_spec = self._agent.state_spec(None)
        self._spec = trajectory_spec(config.agent, config.observation_spec,
                                     config.unroll_length, state_spec)
        self._buffers = _buffers(self._spec, n)
        b = self._buffers
        b.level_id[:] = self._level_ids
        # The step before the first unroll: a fresh episode, no action yet,
        # kept in column T so that each unroll starts by copying T to 0.
        last = config.unroll_length
        self._envs.reset_into(last, b)
        b.env_outputs.done[:, last] = True
        self._state = self._agent.initial_state(n)
        self._variables = self._agent.trainable_variables  # Built above.
        self.frames = 0

    @property
    def variable_specs(self):
        return [(v.dtype, v.shape) for v in self._variables]

    def _carry_last_step(self):
        """Column T of the previous unroll becomes column 0 of this one."""
        b, last = self._buffers, self._config.unroll_length
        for x in (tf.nest.flatten(b.env_outputs)
                  + tf.nest.flatten(b.agent_outputs)
                  + [b.game_over, b.episode_return, b.episode_step]):
            x[:, 0] = x[:, last]
        # Step 0 is a repeat: its game statistics were already counted.
        # Flags and statistics of steps 1..T are written only where set.
        b.env_outputs.done[:, 1:] = False
        b.game_over[:] = False
        b.episode_return[:] = 0.0
        b.episode_step[:] = 0

    def unroll(self):
        """Acts one unroll in every env; returns the trajectory nest [N, ...]."""
        weights, version = self._client.pull_weights()
        for v, w in zip(self._variables, weights):
            v.assign(w)
        b = self._buffers
        b.policy_version[:] = version
        tf.nest.map_structure(
            lambda dst, src: dst.__setitem__(slice(None), np.asarray(src)),
            b.agent_state, self._state)
        self._carry_last_step()
        env_out, agent_out = b.env_outputs, b.agent_outputs
        obs = env_out.observation
        policy, state = self._policy, self._state
        for t in range(1, self._config.unroll_length + 1):
            s = t - 1
            action, logits, baseline, state = policy(
                agent_out.action[:, s], env_out.reward[:, s],
                env_out.done[:, s], {k: v[:, s] for k, v in obs.items()},
                state)
            agent_out.action[:, t] = action
            agent_out.policy_logits[:, t] = logits
            agent_out.baseline[:, t] = baseline
            self._envs.step_into(action, t, b)
        self._state = state
        self.frames += len(self._level_ids) * self._config.unroll_length
        return b

    def run(self, should_stop=lambda: False):
        """Unroll and enqueue until `should_stop()` or the learner closes."""
        try:
            while not should_stop():
                self._client.enqueue(self.unroll())
        except (tf.errors.CancelledError, tf.errors.AbortedError,
                tf.errors.OutOfRangeError):
            pass  # The learner closed the queue: a normal end.

    def close(self):
        self._envs.close()


def run_actor(config, task, learner_address, stop_event=None,
              connect_timeout_s=120.0, slots=None,
              make_environments=env_batch.make):
    """Process entry point: connect to the learner, act until it is done.

    Returns normally when the learner closes its queue or `stop_event` is
    set; raises `tf.errors.UnavailableError` if the learner cannot be
    reached within `connect_timeout_s`. With `slots` (a
    `local_transport.SharedSlots` from the learner process) trajectories go
    through that shared memory; weights always come over gRPC.
    `make_environments` builds the environment batch (`Actor`).
    """
    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    actor = None
    client = None
    try:
        # The agent's variables are needed to know what to read; build the
        # actor first (environments, network), then connect.
        actor = Actor(config, task, _LazyClient(), make_environments)
        client = transport.ActorTransport(
            learner_address, actor._spec, actor.variable_specs,
            config.queue_capacity, connect_timeout_s=connect_timeout_s)
        actor._client = client
        if slots is not None:
            from impala_tf import local_transport  # pylint: disable=g-import-not-at-top
            actor._client = local_transport.SlotSender(slots, client)
        actor.run(should_stop=(stop_event.is_set if stop_event is not None
                               else lambda: False))
    finally:
        if actor is not None:
            actor.close()
        if client is not None:
            client.close()


class _LazyClient:
    def pull_weights(self):
        raise RuntimeError("actor is not connected")

    def enqueue(self, trajectories):
        raise RuntimeError("actor is not connected")
