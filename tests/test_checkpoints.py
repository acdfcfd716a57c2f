"""Tests for impala_tf.runtime.checkpoints beyond those of tests/test_reliability*
(errors, resume) and tests/test_pbt.py (hyperparameters): saving a step
twice."""

import os

import tensorflow as tf

from impala_tf.runtime import checkpoints
from impala_tf import testing
from impala_tf.runtime import trainer


def _files(directory):
    return {n: os.stat(os.path.join(directory, n)).st_mtime_ns
            for n in os.listdir(directory)}


def test_a_step_already_saved_is_not_rewritten(tmp_path):
    _, learner, _, _ = trainer.build(testing.tiny_train_config(tmp_path))
    directory = str(tmp_path / "ck")
    saver = checkpoints.Checkpoints(directory, learner, print)
    first = saver.save()
    before = _files(directory)
    assert saver.save() == first  # Same step: the same checkpoint.
    assert _files(directory) == before  # Nothing rewritten in place.
    learner.num_steps.assign_add(1)
    second = saver.save()
    assert second != first and second.endswith("-1")
    assert tf.train.latest_checkpoint(directory) == second
