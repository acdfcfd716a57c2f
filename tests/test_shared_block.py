"""Tests for impala_tf.transport.shared_block: arrays aligned for
zero-copy tensors."""

import numpy as np

from impala_tf.transport import shared_block


def test_aligned_empty_is_64_byte_aligned():
    flat = [shared_block.aligned_empty((3, 5), np.float32),
            shared_block.aligned_empty((7,), np.uint8)]
    for x in flat:
        assert x.ctypes.data % 64 == 0


def test_aligned_empty_of_objects_is_a_plain_object_array():
    """Strings (DMLab's instruction) cannot be viewed from bytes; they come
    as an ordinary object array of the shape asked for."""
    x = shared_block.aligned_empty((2, 3), object)
    assert x.dtype == object and x.shape == (2, 3)
    x[0, 0] = b"instruction"
    assert x[0, 0] == b"instruction"
