"""Tests for impala_tf.runtime.prefetch (on '/CPU:0'; the trainer uses a GPU)."""

import numpy as np
import pytest
import tensorflow as tf

from impala_tf.runtime import prefetch


def _nests(n):
    for i in range(n):
        yield {"x": np.full([2, 3], i, np.int32), "y": (np.float32(i),)}


@pytest.mark.parametrize("buffer_size", [1, 3])
def test_keeps_order_copies_and_ends_with_the_source(buffer_size):
    out = list(prefetch.prefetch_to_device(_nests(5), "/CPU:0", buffer_size))
    assert [int(b["x"][0, 0]) for b in out] == [0, 1, 2, 3, 4]
    assert all(isinstance(b["x"], tf.Tensor) for b in out)
    assert all(b["x"].device.endswith("CPU:0") for b in out)
    assert [float(b["y"][0]) for b in out] == [0, 1, 2, 3, 4]


def test_empty_source_ends_at_once_and_stays_ended():
    it = prefetch.prefetch_to_device(iter([]), "/CPU:0")
    with pytest.raises(StopIteration):
        next(it)
    with pytest.raises(StopIteration):
        next(it)


def test_source_error_reaches_the_consumer_after_earlier_batches():
    def failing():
        yield {"x": np.zeros([1])}
        raise RuntimeError("source broke")

    it = prefetch.prefetch_to_device(failing(), "/CPU:0")
    assert next(it)["x"].shape == [1]
    with pytest.raises(RuntimeError, match="source broke"):
        next(it)
    with pytest.raises(RuntimeError, match="source broke"):
        next(it)


def test_close_closes_the_source_and_ends_the_iteration():
    class Source:
        closed = False

        def __iter__(self):
            i = 0
            while not self.closed:  # Endless until closed.
                yield {"i": np.int64(i)}
                i += 1

        def close(self):
            self.closed = True

    source = Source()
    it = prefetch.prefetch_to_device(source, "/CPU:0", buffer_size=2)
    assert int(next(it)["i"]) == 0 and int(next(it)["i"]) == 1
    it.close()
    assert source.closed
    with pytest.raises(StopIteration):
        next(it)
