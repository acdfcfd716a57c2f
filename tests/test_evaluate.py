"""runtime.evaluate: playing test episodes and writing the scores CSV."""

import csv

import numpy as np
import pytest
import tensorflow as tf
from absl import flags

from impala_tf import testing
from impala_tf import types
from impala_tf.agents import policy
from impala_tf.cli import flags as train_flags
from impala_tf.cli import train_config
from impala_tf.envs import toy
from impala_tf.runtime import evaluate


class _Scripted:
    """A policy that picks the frame's colour (0 red, 1 green) and records
    what it was given; its state counts the steps."""

    def __init__(self):
        self.calls = []

    def initial_state(self, batch_size):
        return tf.zeros([batch_size], tf.int32)

    def step(self, prev_action, env_output, state):
        frame = env_output.observation["frame"].numpy()
        self.calls.append((int(prev_action[0]), float(env_output.reward[0]),
                           bool(env_output.done[0]), int(state[0])))
        action = tf.constant([int(frame[0, 0, 0, 1] > 0)], tf.int32)
        return types.AgentOutput(action, None, None), state + 1


def test_play_episode_feeds_back_action_reward_and_state():
    agent = _Scripted()
    env = toy.ColourChoice(seed=1, episode_length=10)
    assert evaluate.play_episode(agent.step, agent, env, ["frame"]) == (10.0,
                                                                        10)
    prev, rewards, dones, states = zip(*agent.calls)
    assert dones == (True,) + (False,) * 9  # Only the first is a start.
    assert rewards == (0.0,) + (1.0,) * 9
    assert states == tuple(range(10))
    assert prev[0] == 0 and len(prev) == 10


def test_play_episode_stops_at_max_steps():
    agent = _Scripted()
    env = toy.ColourChoice(seed=1, episode_length=10)
    assert evaluate.play_episode(agent.step, agent, env, ["frame"],
                                 max_steps=3) == (3.0, 3)


def test_evaluate_restores_the_checkpoint_and_writes_every_episode(tmp_path):
    flag_values = train_flags.define_train_flags(flags.FlagValues())
    flag_values(["impala", "--level_name=" + testing.TOY_LEVEL])
    actor = train_config.build(flag_values).actor
    trained = actor.agent.build()
    # Variables of another agent of the same config: what evaluate restores.
    evaluate.play_episode(
        policy.make_policy_step(trained, actor.observation_spec, 1),
        trained, toy.ColourChoice(), list(actor.observation_spec),
        max_steps=1)
    path = tf.train.Checkpoint(agent=trained).write(str(tmp_path / "ckpt"))
    restored = []

    def restore(checkpoint):
        checkpoint.read(path).assert_consumed()
        restored.append(checkpoint.agent)

    output = tmp_path / "scores" / "test.csv"
    logged = []
    means = evaluate.evaluate(actor, restore, 3, str(output),
                              num_action_repeats=4, log=logged.append)
    assert len(restored) == 1
    for a, b in zip(restored[0].variables, trained.variables):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    with open(output) as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["level", "score", "episode", "frames"]
    level = rows[1][0]
    assert [r[0] for r in rows[1:]] == [level] * 3
    assert [r[2] for r in rows[1:]] == ["0", "1", "2"]
    assert [r[3] for r in rows[1:]] == ["40"] * 3  # 10 steps, 4 frames each.
    scores = [float(r[1]) for r in rows[1:]]
    assert all(0 <= s <= 10 for s in scores)
    assert means == {level: pytest.approx(np.mean(scores))}
    assert len(logged) == 3 and logged[0].startswith(
        f"[impala] test {level} episode 1/3: return ")
