"""Actors: act in environments with a copy of the policy, ship unrolls.

One actor process owns `envs_per_actor` environments and steps them in
lock-step so that the policy runs once per step on a batch of observations
(the actor-side form of the paper's dynamic batching). Each unroll:

  1. read the latest weights (and their version) from the learner;
  2. act T steps in every environment, starting from the last step of the
     previous unroll (so each trajectory has T+1 steps, `types.Trajectory`);
  3. enqueue the N trajectories into the learner's queue in one call.

An actor never waits for the learner except through the queue's
back-pressure. Episode ends are handled here: on a LAST timestep the
environment is reset and the step is recorded with `done=True`, the reset
observation and the final reward (the release's convention).
"""

import dataclasses
import typing

import numpy as np
import tensorflow as tf

from impala_tf import agents
from impala_tf import transport
from impala_tf import types
from impala_tf.envs import registry


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


@dataclasses.dataclass(frozen=True)
class ActorConfig:
    level_set: registry.LevelSet
    agent: AgentConfig
    observation_spec: typing.Dict[str, typing.Any]  # name -> tf.TensorSpec
    unroll_length: int
    envs_per_actor: int
    queue_capacity: int
    seed: int


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


class _Buffers:
    """Preallocated numpy arrays for N trajectories of T+1 steps."""

    def __init__(self, spec, n):
        self.arrays = tf.nest.map_structure(
            lambda s: np.zeros([n] + s.shape.as_list(),
                               object if s.dtype == tf.string
                               else s.dtype.as_numpy_dtype), spec)


class EnvironmentBatch:
    """N dm_env environments stepped together; keeps game statistics.

    `step(actions)` returns (reward [N], done [N], observation dict of
    [N, ...], game_over [N], episode_return [N], episode_step [N]).
    """

    def __init__(self, envs, obs_spec):
        self.envs = envs
        self._keys = list(obs_spec)
        self._returns = np.zeros(len(envs), np.float32)
        self._steps = np.zeros(len(envs), np.int32)

    def _observation(self, timestep):
        obs = timestep.observation
        return obs if isinstance(obs, dict) else {"frame": obs}

    def reset(self):
        obs = [self._observation(env.reset()) for env in self.envs]
        return {k: np.stack([o[k] for o in obs]) for k in self._keys}

    def step(self, actions):
        n = len(self.envs)
        reward = np.zeros(n, np.float32)
        done = np.zeros(n, bool)
        game_over = np.zeros(n, bool)
        ep_return = np.zeros(n, np.float32)
        ep_step = np.zeros(n, np.int32)
        obs = []
        for i, env in enumerate(self.envs):
            ts = env.step(int(actions[i]))
            r = float(ts.reward or 0.0)
            reward[i] = r
            self._returns[i] += r
            self._steps[i] += 1
            if ts.last():
                done[i] = True
                over = getattr(env, "is_game_over", None)
                if over is None or over():
                    game_over[i] = True
                    ep_return[i], ep_step[i] = self._returns[i], self._steps[i]
                    self._returns[i], self._steps[i] = 0.0, 0
                ts = env.reset()
            obs.append(self._observation(ts))
        return (reward, done,
                {k: np.stack([o[k] for o in obs]) for k in self._keys},
                game_over, ep_return, ep_step)

    def close(self):
        for env in self.envs:
            env.close()


class Actor:
    """Acts with N environments and a local copy of the policy.

    Args:
      config: `ActorConfig`.
      task: this actor's index (seeds and level assignment derive from it).
      transport_client: an `ActorTransport` (or anything with `pull_weights`
        and `enqueue`).
    """

    def __init__(self, config, task, transport_client):
        self._config = config
        self._client = transport_client
        n = config.envs_per_actor
        level_set = config.level_set
        self._level_ids = np.array(
            [level_set.level_for(task * n + i) for i in range(n)], np.int32)
        envs = [level_set.make(int(self._level_ids[i]),
                               seed=config.seed + 1000 * task + i)
                for i in range(n)]
        self._envs = EnvironmentBatch(envs, config.observation_spec)
        self._agent = config.agent.build()
        self._step = make_policy_step(self._agent, config.observation_spec, n)
        state_spec = self._agent.state_spec(None)
        self._spec = trajectory_spec(config.agent, config.observation_spec,
                                     config.unroll_length, state_spec)
        self._buffers = _Buffers(self._spec, n).arrays
        # The step before the first unroll: a fresh episode, no action yet.
        obs = self._envs.reset()
        self._env_output = types.EnvOutput(
            np.zeros(n, np.float32), np.ones(n, bool), obs)
        self._agent_output = types.AgentOutput(
            np.zeros(n, np.int32),
            np.zeros([n, config.agent.num_actions], np.float32),
            np.zeros(n, np.float32))
        self._state = self._agent.initial_state(n)
        # Build the variables before the first weight pull.
        self._step(self._agent_output.action, self._as_tensors(
            self._env_output), self._state)
        self._variables = self._agent.trainable_variables
        self.frames = 0

    @property
    def variable_specs(self):
        return [(v.dtype, v.shape) for v in self._variables]

    def _as_tensors(self, env_output):
        return types.EnvOutput(
            tf.constant(env_output.reward), tf.constant(env_output.done),
            {k: tf.constant(v) for k, v in env_output.observation.items()})

    def _record(self, t, env_output, agent_output, extras):
        b = self._buffers
        b.env_outputs.reward[:, t] = env_output.reward
        b.env_outputs.done[:, t] = env_output.done
        for k, v in env_output.observation.items():
            b.env_outputs.observation[k][:, t] = v
        b.agent_outputs.action[:, t] = agent_output.action
        b.agent_outputs.policy_logits[:, t] = agent_output.policy_logits
        b.agent_outputs.baseline[:, t] = agent_output.baseline
        b.game_over[:, t], b.episode_return[:, t], b.episode_step[:, t] = extras

    def unroll(self):
        """Acts one unroll in every env; returns the trajectory nest [N, ...]."""
        weights, version = self._client.pull_weights()
        for v, w in zip(self._variables, weights):
            v.assign(w)
        n = len(self._level_ids)
        b = self._buffers
        b.level_id[:] = self._level_ids
        b.policy_version[:] = version
        tf.nest.map_structure(
            lambda dst, src: dst.__setitem__(slice(None), np.asarray(src)),
            b.agent_state, self._state)
        zeros = (np.zeros(n, bool), np.zeros(n, np.float32),
                 np.zeros(n, np.int32))
        self._record(0, self._env_output, self._agent_output, zeros)
        for t in range(1, self._config.unroll_length + 1):
            out, self._state = self._step(
                tf.constant(self._agent_output.action),
                self._as_tensors(self._env_output), self._state)
            out = types.AgentOutput(*(x.numpy() for x in out))
            reward, done, obs, over, ret, steps = self._envs.step(out.action)
            self._env_output = types.EnvOutput(reward, done, obs)
            self._agent_output = out
            self._record(t, self._env_output, out, (over, ret, steps))
        self.frames += n * self._config.unroll_length
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
              connect_timeout_s=120.0):
    """Process entry point: connect to the learner, act until it is done.

    Returns normally when the learner closes its queue or `stop_event` is
    set; raises `tf.errors.UnavailableError` if the learner cannot be
    reached within `connect_timeout_s`.
    """
    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    actor = None
    client = None
    try:
        # The agent's variables are needed to know what to read; build the
        # actor first (environments, network), then connect.
        actor = Actor(config, task, _LazyClient())
        client = transport.ActorTransport(
            learner_address, actor._spec, actor.variable_specs,
            config.queue_capacity, connect_timeout_s=connect_timeout_s)
        actor._client = client
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
