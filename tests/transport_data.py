"""The small trajectory nest the transport tests send (tests/test_transport.py,
tests/test_grpc.py): a support module, not a test file, so every
test target (Bazel's included) has it."""

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
