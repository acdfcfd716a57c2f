"""atari57.evaluation: the paper's training and test protocols as kwargs."""

import pytest

import atari57
from atari57 import evaluation
from impala_tf.envs import atari


def test_evaluation_kwargs():
    assert atari57.evaluation_env_kwargs() == dict(
        num_action_repeats=4, frame_stack=4, noop_max=30,
        max_episode_frames=108_000, sticky_action_prob=0.0, screen_size=84,
        terminal_on_life_loss=False, full_action_space=False)
    assert atari57.EVALUATION_EPISODES == 200


def test_training_kwargs_differ_only_in_life_loss():
    train = evaluation.training_env_kwargs()
    test = evaluation.evaluation_env_kwargs()
    assert train == dict(test, terminal_on_life_loss=True)
    assert evaluation.training_env_kwargs(full_action_space=1) == dict(
        train, full_action_space=True)


@pytest.mark.parametrize("kwargs", [evaluation.training_env_kwargs(),
                                    evaluation.evaluation_env_kwargs(True)])
def test_kwargs_build_an_atari_environment(kwargs):
    pytest.importorskip("ale_py")
    env = atari.AtariEnvironment("pong", seed=0, **kwargs)
    try:
        assert env.observation_spec().shape[:2] == (84, 84)
        num_actions = env.action_spec().num_values
        assert num_actions == (18 if kwargs["full_action_space"] else 6)
    finally:
        env.close()
