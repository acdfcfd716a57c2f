"""The small trajectory nest the transport tests send, the check of a batch
of it and a stand-in weight source (tests/test_transport.py,
test_shared_memory.py, test_grpc.py): a support module, not a test file, so
every test target (Bazel's included) has it."""

import numpy as np
import tensorflow as tf

SPEC = {"k": tf.TensorSpec([], tf.int64),
        "x": tf.TensorSpec([3, 2], tf.float32),
        "flag": tf.TensorSpec([3], tf.bool),
        "frame": tf.TensorSpec([3, 5, 5, 4], tf.uint8)}


def trajectories(ks):
    """The nest for trajectories numbered ks, each [len(ks), ...]."""
    ks = np.asarray(ks, np.int64)
    return {"k": ks,
            "x": (ks[:, None, None] + np.arange(6).reshape(1, 3, 2)).astype(
                np.float32),
            "flag": (ks[:, None] + np.arange(3)) % 2 == 0,
            "frame": ((ks[:, None, None, None, None]
                       + np.zeros((1, 3, 5, 5, 4), np.int64)) % 251).astype(
                           np.uint8)}


def check_batch(flat, batch_size):
    """Checks one received batch (its flat leaves, in `SPEC`'s nest order):
    [batch_size] trajectories, each exactly what `trajectories` builds for
    its number; returns their numbers."""
    batch = tf.nest.pack_sequence_as(SPEC, flat)
    assert batch["k"].shape == (batch_size,)
    expected = trajectories(batch["k"])
    for key in SPEC:
        np.testing.assert_array_equal(batch[key], expected[key])
    return [int(k) for k in batch["k"]]


class StandInClient:
    """Stands in for `transport.shared_weights.WeightReader`: no weights;
    the learner is done once the `closed` event (if any) is set."""

    def __init__(self, closed=None):
        self._closed = closed

    def pull_weights(self):
        return [], 0

    def queue_closed(self):
        return bool(self._closed is not None and self._closed.is_set())

    def close(self):
        pass
