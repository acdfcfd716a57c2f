"""Tests of the transports' interfaces (`impala_tf.transport`): a sender is
an `ActorTransport`, and the learner's batches are a `BatchSource` of
tensors of the trajectory nest that ends on close (shown with shared memory;
tests/test_grpc.py shows the gRPC transport gives the same kind).
"""

import multiprocessing

import pytest
import tensorflow as tf

from impala_tf import transport
from impala_tf.transport import shared_memory
from tests import transport_data as t
from tests.transport_data import SPEC


def _ctx():
    return multiprocessing.get_context("spawn")


def test_batches_are_tensors_of_the_nest_and_end_on_close():
    slots = shared_memory.SharedSlots(SPEC, 4, 2, _ctx())
    sender = shared_memory.SlotSender(slots, t.StandInClient())
    sender.enqueue(t.trajectories([5, 6, 7, 8]))
    receiver = shared_memory.SlotReceiver([slots], SPEC)
    batches = receiver.batches(2, prefetch=1)
    assert isinstance(sender, transport.ActorTransport)
    assert isinstance(batches, transport.BatchSource)
    first = next(batches)
    assert isinstance(first["frame"], tf.Tensor)
    assert first["frame"].shape == (2, 3, 5, 5, 4)
    assert first["frame"].dtype == tf.uint8
    assert first["flag"].dtype == tf.bool
    assert t.check_batch([first[k].numpy() for k in sorted(SPEC)], 2) == [5, 6]
    second = next(batches)
    assert [int(k) for k in second["k"]] == [7, 8]
    sender.enqueue(t.trajectories([9, 10, 11, 12]))  # Slot 0 is free again.
    # The tensors own their memory: refilling the slots does not touch them.
    assert t.check_batch([first[k].numpy() for k in sorted(SPEC)], 2) == [5, 6]
    assert [int(k) for k in next(batches)["k"]] == [9, 10]
    batches.close()
    with pytest.raises(StopIteration):
        while True:  # A batch may already be prefetched; then the end.
            next(batches)
