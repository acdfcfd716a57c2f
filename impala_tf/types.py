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
Trajectory = collections.namedtuple(
    "Trajectory",
    ["level_id", "policy_version", "agent_state", "env_outputs",
     "agent_outputs", "game_over", "episode_return", "episode_step"])
