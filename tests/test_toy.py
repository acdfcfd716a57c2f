"""envs.toy: ColourChoice pays the action that names the frame's colour."""

import dm_env
import numpy as np
import pytest

from impala_tf.envs import toy

RED, GREEN = (255, 0, 0), (0, 255, 0)


def _colour(frame):
    """0 for a red frame, 1 for a green one (every pixel the same)."""
    assert (frame == frame[0, 0]).all()
    return {RED: 0, GREEN: 1}[tuple(int(c) for c in frame[0, 0])]


def _play(env, policy):
    """One episode's (return, number of steps)."""
    step, total, steps = env.reset(), 0.0, 0
    assert step.first()
    while not step.last():
        step = env.step(policy(step.observation))
        total += step.reward
        steps += 1
        assert steps <= 1000
    return total, steps


def test_specs():
    env = toy.ColourChoice(size=6, num_actions=4)
    assert env.observation_spec().shape == (6, 6, 3)
    assert env.observation_spec().dtype == np.uint8
    assert env.action_spec().num_values == 4
    frame = env.reset().observation
    assert frame.shape == (6, 6, 3) and frame.dtype == np.uint8


def test_the_right_colour_earns_every_step():
    env = toy.ColourChoice(seed=3, episode_length=10)
    assert _play(env, _colour) == (10.0, 10)
    assert _play(env, lambda frame: 1 - _colour(frame)) == (0.0, 10)
    # An action that names no colour earns nothing.
    assert _play(toy.ColourChoice(num_actions=3), lambda frame: 2) == (0.0, 10)


def test_a_constant_action_earns_half_on_average():
    env = toy.ColourChoice(seed=0, episode_length=10)
    returns = [_play(env, lambda frame: 0)[0] for _ in range(400)]
    # Binomial(4000, 1/2) / 400: standard error 0.079 around 5.
    assert np.mean(returns) == pytest.approx(5.0, abs=0.4)


def test_the_last_step_is_a_termination():
    env = toy.ColourChoice(episode_length=3)
    env.reset()
    kinds = [env.step(0).step_type for _ in range(3)]
    assert kinds == [dm_env.StepType.MID, dm_env.StepType.MID,
                     dm_env.StepType.LAST]


def test_seeds_repeat_and_differ():
    def colours(seed):
        env = toy.colour_choice(seed=seed, is_test=True)
        frames = [env.reset().observation] + [
            env.step(0).observation for _ in range(9)]
        return [_colour(f) for f in frames]
    assert colours(1) == colours(1)
    assert colours(1) != colours(2)
