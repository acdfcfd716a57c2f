"""The paper's Atari training and evaluation protocols as environment kwargs.

Both return keyword arguments for
``impala_tf.envs.atari.AtariEnvironment(game, seed=..., **kwargs)``; this
module does not import it (atari57 stays free of ALE and TensorFlow).

Training (Table G.1): action repeat 4 with max over the last 2 frames, 4
stacked 84x84 grayscale frames, life loss ends the training episode, 1-30
random no-ops at each game start, episodes capped at 108,000 raw frames,
no sticky actions.

Evaluation (the paper's "test mode"): the same preprocessing, but an episode
is a whole game (no termination on life loss), starting with 1-30 uniformly
random no-ops, capped at 108,000 raw frames (30 minutes of play; common
practice). The paper reports the mean return of ``EVALUATION_EPISODES`` (200)
such episodes per game, with the unclipped game score as the return.
"""

from typing import Any, Dict

__all__ = ["EVALUATION_EPISODES", "evaluation_env_kwargs",
           "training_env_kwargs"]

EVALUATION_EPISODES = 200  # Episodes per game in the paper's evaluation.

_COMMON = dict(
    num_action_repeats=4,
    frame_stack=4,
    noop_max=30,
    max_episode_frames=108_000,
    sticky_action_prob=0.0,
    screen_size=84,
)


def training_env_kwargs(full_action_space: bool = False) -> Dict[str, Any]:
    """AtariEnvironment kwargs for training (life loss ends an episode).

    ``full_action_space=True`` for the multi-task agent (18 actions).
    """
    return dict(_COMMON, terminal_on_life_loss=True,
                full_action_space=bool(full_action_space))


def evaluation_env_kwargs(full_action_space: bool = False) -> Dict[str, Any]:
    """AtariEnvironment kwargs for the paper's test mode.

    No termination on life loss (an episode is a whole game), 1-30 random
    no-ops at the start, 108,000-frame cap. Use the same
    ``full_action_space`` as in training (True for the multi-task agent).
    """
    return dict(_COMMON, terminal_on_life_loss=False,
                full_action_space=bool(full_action_space))
