"""Tests for impala_tf.runtime.baselines.a3c: a worker's gradient applied
by the learner."""

import multiprocessing

import numpy as np
import tensorflow as tf

from impala_tf import testing
from impala_tf.runtime import trainer
from impala_tf.runtime.baselines import a3c
from impala_tf.runtime.baselines import waits
from impala_tf.transport import shared_memory
from impala_tf.transport import shared_weights
from tests import baselines_support

SPAWN = multiprocessing.get_context("spawn")
_config = baselines_support.architecture_config


def _numpy_batch(seed):
    """Two random unrolls of the tiny config (T=5, 2 actions, 24x24), as
    numpy arrays [2, T+1, ...]: what an actor sends."""
    batch = testing.random_batch(2, 5, 2, 24, seed=seed)
    return tf.nest.map_structure(lambda x: x.numpy(), batch)


def test_a3c_update_equals_the_learners_own_step(tmp_path):
    """A worker's gradient, through shared memory and the learner's
    apply step, moves the weights exactly as the learner's train step on
    the same unrolls does."""
    config = _config(tmp_path, "a3c")
    _, learner, traj_spec, _ = trainer.build(config)
    _, reference, _, _ = trainer.build(config)
    for v, w in zip(reference.agent.trainable_variables,
                    learner.agent.trainable_variables):
        v.assign(w)
    worker_agent = trainer.actor_lib.build_agent(config.actor)
    for v, w in zip(worker_agent.trainable_variables,
                    learner.agent.trainable_variables):
        v.assign(w)
    spec = a3c.message_spec(learner, traj_spec, 2)
    slots = shared_memory.SharedSlots(spec, 1, 1, SPAWN)
    weights = shared_weights.SharedWeights(
        [(v.dtype, v.shape) for v in learner.agent.trainable_variables],
        SPAWN)
    weights.write([v.numpy() for v in learner.agent.trainable_variables], 0)
    applied = np.zeros([1], np.int64)
    stats = waits.WaitStats(1, SPAWN)
    sender = a3c.GradientSender(
        worker_agent, config.learner, traj_spec, 2,
        shared_memory.SlotSender(slots, shared_weights.WeightReader(weights)),
        applied, 0, waits.Row(stats.row(0)), lambda: weights.closed)
    receiver = shared_memory.SlotReceiver([slots], spec).batches(1, 1)
    step = a3c.apply_step(learner, applied)
    try:
        batch = _numpy_batch(seed=4)
        sender.pull_weights()
        sender.enqueue(batch)
        out = step(next(receiver))
        want = reference.train_step(
            tf.nest.map_structure(tf.convert_to_tensor, batch))
    finally:
        receiver.close()
    assert applied[0] == 1  # The worker's next pull may go on.
    for got, ref in zip(learner.agent.trainable_variables,
                        reference.agent.trainable_variables):
        np.testing.assert_allclose(got.numpy(), ref.numpy(), rtol=1e-5,
                                   atol=1e-6)
    assert int(out["num_frames"]) == int(want["num_frames"]) == 2 * 5
    np.testing.assert_allclose(float(out["total_loss"]),
                               float(want["total_loss"]), rtol=1e-5)
    assert stats.record()["actor_gradient_s"] > 0
