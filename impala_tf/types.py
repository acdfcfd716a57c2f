"""Data structures shared by actors, the transport and the learner.

Layout of one unroll (the release's convention, kept on purpose): a trajectory
has T+1 steps. Step t holds the environment output for observation x_t and the
agent output that *led* to it:

  env_outputs[t]   = EnvOutput(reward r_t, done d_t, observation x_t)
  agent_outputs[t] = AgentOutput(action a_{t-1}, policy_logits mu(.|x_{t-1}),
                                 baseline V(x_{t-1}))

so ``agent_outputs.action[t]`` is the previous action fed to the agent
together with ``x_t``. Step 0 repeats the previous unroll's last step. ``done``
at t means x_t is the first observation of a new episode (the environment was
reset after the action a_{t-1}); the reward r_t is then the last reward of the
finished episode. The learner uses x_0..x_{T-1} for the loss and x_T for the
bootstrap value; rewards, dones and actions come from steps 1..T.
"""

import collections

import numpy as np
import tensorflow as tf

# reward: float32 [...]; done: bool [...]; observation: dict with
# 'frame' uint8 [..., H, W, C] and optionally 'instruction' string [...].
EnvOutput = collections.namedtuple("EnvOutput", ["reward", "done", "observation"])

# action: int32 [...]; policy_logits: float32 [..., A]; baseline: float32 [...].
AgentOutput = collections.namedtuple(
    "AgentOutput", ["action", "policy_logits", "baseline"])

# One unroll as it travels from an actor to the learner (time-major inside
# the unroll; the queue adds a leading batch dimension):
#   level_id:       int32 []         index into the level set (multi-task stats)
#   policy_version: int64 []         learner step of the weights that acted
#   agent_state:    nest of float32  core state before x_0 ([256] each, or ())
#   env_outputs:    EnvOutput, each [T+1, ...]
#   agent_outputs:  AgentOutput, each [T+1, ...]
#   game_over:      bool [T+1]       a whole game ended at step t (not a life)
#   episode_return: float32 [T+1]    the finished game's return where game_over
#   episode_step:   int32 [T+1]      the finished game's agent steps where game_over
#   replayed:       bool []          False as the actor sends it; True where
#                                    the learner's replay buffer gave it
#                                    (`replay.ReplayBatchSource`), so the
#                                    learner counts played frames from the
#                                    batch itself
Trajectory = collections.namedtuple(
    "Trajectory",
    ["level_id", "policy_version", "agent_state", "env_outputs",
     "agent_outputs", "game_over", "episode_return", "episode_step",
     "replayed"])


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
    """A: the number of discrete actions of a dm_env (ValueError if the
    action spec is not a DiscreteArray)."""
    spec = env.action_spec()
    if not hasattr(spec, "num_values"):
        raise ValueError(
            "the environment's action spec must be a dm_env DiscreteArray, "
            f"got {type(spec).__name__}")
    return int(spec.num_values)


def trajectory_spec(num_actions, obs_spec, unroll_length, state_spec):
    """Nest of `tf.TensorSpec` for one trajectory (see `Trajectory`).

    Args:
      num_actions: A.
      obs_spec: {'frame': TensorSpec [H, W, C] uint8, ['instruction': []
        string]} (`observation_spec`).
      unroll_length: T; time-indexed leaves get T+1 steps.
      state_spec: the agent's `state_spec(None)` (leaves [None, ...]).
    """
    n = unroll_length + 1
    timed = lambda s: tf.TensorSpec([n] + s.shape.as_list(), s.dtype)
    return Trajectory(
        level_id=tf.TensorSpec([], tf.int32),
        policy_version=tf.TensorSpec([], tf.int64),
        agent_state=tf.nest.map_structure(
            lambda s: tf.TensorSpec(s.shape[1:], s.dtype), state_spec),
        env_outputs=EnvOutput(
            reward=tf.TensorSpec([n], tf.float32),
            done=tf.TensorSpec([n], tf.bool),
            observation={k: timed(v) for k, v in obs_spec.items()}),
        agent_outputs=AgentOutput(
            action=tf.TensorSpec([n], tf.int32),
            policy_logits=tf.TensorSpec([n, num_actions], tf.float32),
            baseline=tf.TensorSpec([n], tf.float32)),
        game_over=tf.TensorSpec([n], tf.bool),
        episode_return=tf.TensorSpec([n], tf.float32),
        episode_step=tf.TensorSpec([n], tf.int32),
        replayed=tf.TensorSpec([], tf.bool))


def batch_spec(spec, batch_size):
    """`spec` (one trajectory) with a leading batch dimension B."""
    return tf.nest.map_structure(
        lambda s: tf.TensorSpec([batch_size] + s.shape.as_list(), s.dtype),
        spec)


def zero_trajectories(spec, n):
    """Zeroed numpy arrays for N trajectories: the nest of `spec`, each
    [N, ...] (strings as object arrays)."""
    return tf.nest.map_structure(
        lambda s: np.zeros([n] + s.shape.as_list(),
                           object if s.dtype == tf.string
                           else s.dtype.as_numpy_dtype), spec)
