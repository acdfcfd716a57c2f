"""Helpers shared by the tests of hyperparameters as learner variables and
of PBT members (test_learner.py, test_checkpoints.py, test_member.py): a
small feed-forward learner built the same way each call, its batches and
weights. A support module, not a test file."""

import tensorflow as tf

from impala_tf import agents
from impala_tf import testing
from impala_tf.algorithm import learner as learner_lib

B, T, A, SIZE = 3, 4, 3, 24  # Batch, unroll, actions, frame side.
# Hyperparameters unlike the config's (learning rate, entropy cost and
# epsilon 0.01, gradient clip 40).
NEW = {"learning_rate": 0.003, "entropy_cost": 0.05, "epsilon": 0.1,
       "max_grad_norm": 0.5}


def learner_config(**overrides):
    """The learner's `LearnerConfig` (B=3, T=4), with `overrides`."""
    values = dict(
        batch_size=B, unroll_length=T, num_action_repeats=1,
        total_environment_frames=10 * B * T, learning_rate=0.01,
        epsilon=0.01, entropy_cost=0.01, reward_clipping="abs_one",
        max_grad_norm=40.0)
    values.update(overrides)
    return learner_lib.LearnerConfig(**values)


def batch(seed=0):
    """A random `types.Trajectory`, each field [B, T+1, ...], no state."""
    return testing.random_batch(B, T, A, SIZE, seed=seed)


def new_learner(**overrides):
    """A built learner (shallow agent, no LSTM) whose weights are the same
    for every call; `overrides` change its `LearnerConfig`."""
    tf.random.set_seed(0)
    learner = learner_lib.Learner(
        agents.make_agent("shallow", A, use_lstm=False),
        learner_config(**overrides))
    learner.build(tf.nest.map_structure(tf.TensorSpec.from_tensor,
                                        batch()))
    return learner


def weights(learner):
    """The learner agent's trainable variables as numpy arrays."""
    return [v.numpy() for v in learner.agent.trainable_variables]
