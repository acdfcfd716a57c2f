"""Helpers shared by the one-process reliability tests (test_checkpoints.py,
test_learner.py, test_runs.py): random trajectory batches, a learner's
variable values and a saved run directory. A support module, not a test file.
"""

import numpy as np
import tensorflow as tf

from impala_tf.runtime import checkpoints
from impala_tf.runtime import runs
from impala_tf.runtime import trainer
from impala_tf import testing

make_config = testing.tiny_train_config


def random_batch(traj_spec, batch_size, num_actions, seed):
    """A random `types.Trajectory` matching `traj_spec` with a leading
    [batch_size] dimension; none marked replayed (all frames count)."""
    rng = np.random.RandomState(seed)

    def fill(spec):
        shape = [batch_size] + spec.shape.as_list()
        if spec.dtype == tf.uint8:
            return tf.constant(rng.randint(0, 256, shape).astype(np.uint8))
        if spec.dtype == tf.bool:
            return tf.constant(rng.rand(*shape) < 0.1)
        if spec.dtype in (tf.int32, tf.int64):
            return tf.constant(rng.randint(0, num_actions, shape),
                               spec.dtype)
        return tf.constant(rng.randn(*shape).astype(np.float32))

    # As actors send them: none marked replayed (all frames count).
    return tf.nest.map_structure(fill, traj_spec)._replace(
        replayed=tf.zeros([batch_size], tf.bool))


def values(learner):
    """{variable name + index: numpy value} of every learner variable."""
    return {v.name + str(i): v.numpy()
            for i, v in enumerate(learner.variables)}


def save_run(logdir):
    """Writes a run directory at `logdir` with two checkpoints of a trained
    shallow agent; returns `logdir` as a string."""
    config = make_config(logdir)
    _, learner, spec, _ = trainer.build(config)
    run_dir = runs.RunDirectory(config.logdir)
    run_dir.write_config(config)
    saver = checkpoints.Checkpoints(run_dir.checkpoint_dir, learner)
    for seed in range(2):
        learner.train_step(random_batch(spec, 2, 2, seed))
        saver.save()
    return str(logdir)
