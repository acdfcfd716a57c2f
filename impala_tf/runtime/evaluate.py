"""`--mode=test`: play episodes with the latest checkpoint, write scores.

Each level of the level set is played for `num_episodes` episodes in its
*test* configuration (Atari: no life-loss episode ends, 1-30 random no-ops,
108,000-frame cap; DMLab: held-out test levels with a fixed mixer seed).
Actions are sampled from the policy, as in the paper. Per-episode returns go
to a CSV with columns `<game|level>,score,episode,frames`, which
`python -m atari57.report` and `python -m dmlab30.report` read directly.
"""

import csv
import os

import numpy as np
import tensorflow as tf

from impala_tf.agents import policy
from impala_tf import types


def play_episode(policy_step, agent, env, obs_keys, max_steps=None):
    """Plays one episode; returns (return, agent steps)."""
    timestep = env.reset()
    state = agent.initial_state(1)
    prev_action = tf.zeros([1], tf.int32)
    reward, done = 0.0, True
    total, steps = 0.0, 0
    while True:
        obs = timestep.observation
        obs = obs if isinstance(obs, dict) else {"frame": obs}
        env_output = types.EnvOutput(
            tf.constant([reward], tf.float32), tf.constant([done]),
            {k: tf.constant(np.asarray(obs[k])[None]) for k in obs_keys})
        out, state = policy_step(prev_action, env_output, state)
        prev_action = out.action
        timestep = env.step(int(out.action.numpy()[0]))
        reward, done = float(timestep.reward or 0.0), False
        total += reward
        steps += 1
        if timestep.last() or (max_steps and steps >= max_steps):
            return total, steps


def evaluate(actor_config, checkpoint_restore, num_episodes, output_csv,
             seed=0, num_action_repeats=1, log=print):
    """Evaluates every level of `actor_config.level_set`.

    Args:
      actor_config: `actor.ActorConfig` of the run.
      checkpoint_restore: callable(tf.train.Checkpoint) restoring the agent
        (raises on a missing or corrupt checkpoint).
      num_episodes: episodes per level.
      output_csv: path of the per-episode CSV.
    Returns:
      dict level -> mean return.
    """
    agent = actor_config.agent.build()
    policy_step = policy.make_policy_step(
        agent, actor_config.observation_spec, 1)
    level_set = actor_config.level_set
    keys = list(actor_config.observation_spec)
    column = level_set.score_column
    rows, means = [], {}
    restored = False
    for level_id, train_level in enumerate(level_set.levels):
        level = level_set.test_level(train_level)
        env = level_set.make(level_id, seed=seed + level_id, is_test=True)
        try:
            if not restored:
                # Build variables with one step, then restore into them.
                play_episode(policy_step, agent, env, keys, max_steps=1)
                checkpoint_restore(tf.train.Checkpoint(agent=agent))
                restored = True
            returns = []
            for episode in range(num_episodes):
                ret, steps = play_episode(policy_step, agent, env, keys)
                returns.append(ret)
                rows.append((level, ret, episode,
                             steps * num_action_repeats))
                log(f"[impala] test {level} episode {episode + 1}/"
                    f"{num_episodes}: return {ret:.2f}")
            means[level] = float(np.mean(returns))
        finally:
            env.close()
    os.makedirs(os.path.dirname(os.path.abspath(output_csv)), exist_ok=True)
    with open(output_csv, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow([column, "score", "episode", "frames"])
        writer.writerows(rows)
    return means
