"""Tests for impala_tf.transport.shared_weights: the learner's weights in
memory shared with its actor processes (real processes, spawned as the
supervisor spawns actors; no server)."""

import multiprocessing
import threading
import time

import numpy as np
import pytest
import tensorflow as tf

from impala_tf import transport
from impala_tf.transport import shared_weights


def _ctx():
    return multiprocessing.get_context("spawn")


WEIGHT_SPECS = [(tf.float32, tf.TensorShape([2, 3])),
                (tf.int32, tf.TensorShape([])),
                (tf.uint8, tf.TensorShape([5]))]


def _weights(value):
    return [np.full([2, 3], value, np.float32), np.int32(value),
            np.full([5], value % 256, np.uint8)]


def _assert_weights(pulled, value):
    assert len(pulled) == len(WEIGHT_SPECS)
    for got, want in zip(pulled, _weights(value)):
        assert got.dtype == np.asarray(want).dtype
        np.testing.assert_array_equal(got, want)


def test_weights_round_trip_with_their_version_eagerly_and_in_a_step():
    """`WeightWriter` publishes eagerly and from inside a `tf.function`
    (as the learner's step does), after the update it depends on; the
    reader gets exactly the variables' values and the step as version, in
    a spawned process as well as here."""
    weights = shared_weights.SharedWeights(WEIGHT_SPECS, _ctx())
    writer = shared_weights.WeightWriter(weights)
    assert isinstance(writer, transport.WeightPublisher)
    variables = [tf.Variable(w) for w in _weights(3)]
    writer.publish(variables, tf.constant(5, tf.int64))
    reader = shared_weights.WeightReader(weights)
    pulled, version = reader.pull_weights()
    assert version == 5
    _assert_weights(pulled, 3)
    step = tf.Variable(5, dtype=tf.int64)

    @tf.function
    def update():
        for v, w in zip(variables, _weights(4)):
            v.assign(w)
        step.assign_add(1)
        with tf.control_dependencies([step.read_value()]):
            writer.publish(variables, step)

    update()
    pulled, version = reader.pull_weights()
    assert version == 6
    _assert_weights(pulled, 4)
    pulled[0][:] = -1  # The caller's copy: the shared one is untouched.
    _assert_weights(reader.pull_weights()[0], 4)
    ctx = _ctx()
    out = ctx.Queue()
    child = ctx.Process(target=_pull_in_child, args=(weights, out))
    child.start()  # The memory is handed over at spawn, as to actors.
    version, pulled = out.get(timeout=120)
    child.join(30)
    assert version == 6 and child.exitcode == 0
    _assert_weights(pulled, 4)
    assert weights.torn_reads == 0
    assert not reader.queue_closed()
    writer.close()
    assert reader.queue_closed()
    with pytest.raises(tf.errors.CancelledError):
        reader.pull_weights()


def _pull_in_child(weights, out):
    pulled, version = shared_weights.WeightReader(weights).pull_weights()
    out.put((version, pulled))


def test_a_reader_waits_for_the_first_publication():
    weights = shared_weights.SharedWeights(WEIGHT_SPECS, _ctx())
    assert weights.read() is None
    with pytest.raises(tf.errors.DeadlineExceededError):
        shared_weights.WeightReader(weights, timeout_s=0.2).pull_weights()
    got = []
    thread = threading.Thread(target=lambda: got.append(
        shared_weights.WeightReader(weights).pull_weights()))
    thread.start()
    weights.write(_weights(9), 1)
    thread.join(30)
    assert not thread.is_alive()
    (pulled, version), = got
    assert version == 1
    _assert_weights(pulled, 9)
    # Closed before anything was published: the wait ends too.
    empty = shared_weights.SharedWeights(WEIGHT_SPECS, _ctx())
    empty.close()
    with pytest.raises(tf.errors.CancelledError):
        shared_weights.WeightReader(empty).pull_weights()


class _Interrupted(shared_weights.SharedWeights):
    """Runs `during_copy` (the learner publishing) once a copy is taken."""

    during_copy = None

    def _copy(self, views):
        out = super()._copy(views)
        if self.during_copy is not None:
            action, self.during_copy = self.during_copy, None
            action()
        return out


def test_a_torn_read_is_retried():
    """Two publications while a reader copies: the buffer it copied was
    rewritten, so it reads again and gets the newest. One publication while
    it copies writes the other buffer: its copy stands."""
    weights = _Interrupted(WEIGHT_SPECS, _ctx())
    weights.write(_weights(1), 1)
    weights.during_copy = lambda: (weights.write(_weights(2), 2),
                                   weights.write(_weights(3), 3))
    pulled, version = weights.read()
    assert (version, weights.torn_reads) == (3, 1)
    _assert_weights(pulled, 3)
    weights.during_copy = lambda: weights.write(_weights(4), 4)
    pulled, version = weights.read()
    assert (version, weights.torn_reads) == (3, 1)
    _assert_weights(pulled, 3)
    assert weights.read()[1] == 4
    # A writer killed mid-write (sequence left odd) on the latest buffer:
    # no torn copy is ever returned; the reader gives up and waits.
    header = weights.words
    header[shared_weights._SEQ + 2 * ((int(header[0]) - 1) % 2)] += 1
    assert weights.read() is None
    assert weights.torn_reads == 1 + shared_weights._READ_ATTEMPTS


BIG_WEIGHTS = [(tf.float32, tf.TensorShape([1 << 18])),
               (tf.int64, tf.TensorShape([1 << 15]))]
PUBLICATIONS = 400


def _publish_many(weights, started):
    started.set()
    for version in range(1, PUBLICATIONS + 1):
        weights.write([np.full([1 << 18], version, np.float32),
                       np.full([1 << 15], version, np.int64)], version)


def test_concurrent_reads_are_never_torn():
    """A learner process publishes 1 MB of weights 400 times as fast as it
    can, each publication all one value, its version; every read here is
    whole: every element equals the version read with it."""
    ctx = _ctx()
    weights = shared_weights.SharedWeights(BIG_WEIGHTS, ctx)
    started = ctx.Event()
    writer = ctx.Process(target=_publish_many, args=(weights, started))
    writer.start()
    seen = []
    try:
        assert started.wait(60)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            pulled = weights.read()
            if pulled is None:
                continue
            arrays, version = pulled
            assert (arrays[0] == version).all() and (
                arrays[1] == version).all(), version
            seen.append(version)
            if version == PUBLICATIONS:
                break
    finally:
        writer.join(30)
    assert writer.exitcode == 0
    assert seen and seen[-1] == PUBLICATIONS, seen[-5:]
    assert seen == sorted(seen)  # Versions never go back.
