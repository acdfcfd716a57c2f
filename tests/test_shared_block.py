"""Tests for impala_tf.transport.shared_block: arrays aligned for
zero-copy tensors."""

import numpy as np

from impala_tf.transport import shared_block


def test_aligned_empty_is_64_byte_aligned():
    flat = [shared_block.aligned_empty((3, 5), np.float32),
            shared_block.aligned_empty((7,), np.uint8)]
    for x in flat:
        assert x.ctypes.data % 64 == 0
