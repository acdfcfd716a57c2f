"""Tests of the transports (`impala_tf.transport`): gRPC and shared memory.

Shared memory: real processes (multiprocessing spawn, as the supervisor
starts actors) and real shared memory for trajectories (text included); no
server at all (the weights' block: tests/test_shared_weights.py). Some senders use a stand-in weight
source that only answers `queue_closed`. gRPC: a real learner server and
actor client in a private network namespace (`testing.run_isolated_script`).
Both give the learner the same kind of batch source.
"""

import multiprocessing
import os
import random
import threading
import time

import numpy as np
import pytest
import tensorflow as tf

from impala_tf import testing
from impala_tf import transport
from impala_tf.transport import reconnecting
from impala_tf.transport import shared_block
from impala_tf.transport import shared_memory
from impala_tf.transport import shared_weights
from tests import procs
from tests.transport_data import SPEC
from tests.transport_data import trajectories as _trajectories

BIG = 1 << 18  # Floats per trajectory in the kill test: 1 MB.
BIG_SPEC = {"k": tf.TensorSpec([], tf.int64),
            "x": tf.TensorSpec([BIG], tf.float32)}


def _big(ks):
    ks = np.asarray(ks, np.int64)
    return {"k": ks, "x": (ks[:, None] + np.arange(BIG)).astype(np.float32)}


class _Client:
    """Stands in for `transport.shared_weights.WeightReader`."""

    def __init__(self, closed=None):
        self._closed = closed

    def pull_weights(self):
        return [], 0

    def queue_closed(self):
        return bool(self._closed is not None and self._closed.is_set())

    def close(self):
        pass


def _send(slots, first_k, count, n):
    """Child process: sends `count` enqueues of n trajectories from first_k."""
    sender = shared_memory.SlotSender(slots, _Client())
    for j in range(count):
        sender.enqueue(_trajectories(range(first_k + j * n,
                                           first_k + (j + 1) * n)))


def _send_big_forever(slots, first_k, n, busy):
    """Child process: sends batches of 1 MB trajectories until killed;
    busy[0] is 0 while starting, 1 inside an enqueue, 2 between them."""
    sender = shared_memory.SlotSender(slots, _Client())
    data = _big(range(first_k, first_k + n))
    while True:
        busy[0] = 1
        sender.enqueue(data)
        busy[0] = 2
        data["k"] += n
        data["x"] += n


def _ctx():
    return multiprocessing.get_context("spawn")


def _check_batch(flat, batch_size):
    batch = tf.nest.pack_sequence_as(SPEC, flat)
    assert batch["k"].shape == (batch_size,)
    expected = _trajectories(batch["k"])
    for key in SPEC:
        np.testing.assert_array_equal(batch[key], expected[key])
    return [int(k) for k in batch["k"]]


def test_layout_pickles_into_a_child_and_batches_cross_slots_and_actors():
    """Two actor processes, N=3 per enqueue, batches of 4: every trajectory
    arrives once, whole, and in per-actor order, and slots are recycled."""
    ctx = _ctx()
    slots = [shared_memory.SharedSlots(SPEC, 3, 2, ctx) for _ in range(2)]
    children = [ctx.Process(target=_send, args=(slots[a], 1000 * a, 8, 3))
                for a in range(2)]
    for p in children:
        p.start()
    receiver = shared_memory.SlotReceiver(slots, SPEC)
    got = []
    try:
        for _ in range(12):  # 2 actors x 8 enqueues x 3 = 48 = 12 x 4.
            got += _check_batch(receiver.next_batch(4), 4)
    finally:
        for p in children:
            p.join(30)
    assert all(p.exitcode == 0 for p in children)
    assert sorted(got) == sorted(list(range(24)) + list(range(1000, 1024)))
    for a in range(2):  # Oldest slot first: each actor's order is kept.
        mine = [k for k in got if k // 1000 == a]
        assert mine == sorted(mine)
    assert receiver.waiting() == 0
    for s in slots:
        assert (s.header[:, 0] == shared_memory.FREE).all()


def test_sender_blocks_when_full_and_stops_when_the_learner_closes(
        monkeypatch):
    monkeypatch.setattr(shared_memory, "CLOSED_CHECK_S", 0.05)
    slots = shared_memory.SharedSlots(SPEC, 2, 1, _ctx())
    weights = shared_weights.SharedWeights([], _ctx())
    sender = shared_memory.SlotSender(slots,
                                      shared_weights.WeightReader(weights))
    sender.enqueue(_trajectories([1, 2]))  # Fills the only slot.
    done = []

    def second():
        try:
            sender.enqueue(_trajectories([3, 4]))
            done.append("sent")
        except tf.errors.CancelledError:
            done.append("cancelled")

    thread = threading.Thread(target=second)
    thread.start()
    time.sleep(0.3)
    assert not done  # Back-pressure: no free slot.
    receiver = shared_memory.SlotReceiver([slots], SPEC)
    assert _check_batch(receiver.next_batch(2), 2) == [1, 2]
    thread.join(5)
    assert done == ["sent"]  # The slot is full again; the learner stops.
    thread = threading.Thread(target=second)
    done.clear()
    thread.start()
    weights.close()  # The learner is done.
    thread.join(5)
    assert done == ["cancelled"]


def test_batches_are_tensors_of_the_nest_and_end_on_close():
    slots = shared_memory.SharedSlots(SPEC, 4, 2, _ctx())
    sender = shared_memory.SlotSender(slots, _Client())
    sender.enqueue(_trajectories([5, 6, 7, 8]))
    receiver = shared_memory.SlotReceiver([slots], SPEC)
    batches = receiver.batches(2, prefetch=1)
    assert isinstance(sender, transport.ActorTransport)
    assert isinstance(batches, transport.BatchSource)
    first = next(batches)
    assert isinstance(first["frame"], tf.Tensor)
    assert first["frame"].shape == (2, 3, 5, 5, 4)
    assert first["frame"].dtype == tf.uint8
    assert first["flag"].dtype == tf.bool
    assert _check_batch([first[k].numpy() for k in sorted(SPEC)], 2) == [5, 6]
    second = next(batches)
    assert [int(k) for k in second["k"]] == [7, 8]
    sender.enqueue(_trajectories([9, 10, 11, 12]))  # Slot 0 is free again.
    # The tensors own their memory: refilling the slots does not touch them.
    assert _check_batch([first[k].numpy() for k in sorted(SPEC)], 2) == [5, 6]
    assert [int(k) for k in next(batches)["k"]] == [9, 10]
    batches.close()
    with pytest.raises(StopIteration):
        while True:  # A batch may already be prefetched; then the end.
            next(batches)


def test_tensors_share_aligned_memory():
    flat = [shared_block.aligned_empty((3, 5), np.float32),
            shared_block.aligned_empty((7,), np.uint8)]
    for x in flat:
        assert x.ctypes.data % 64 == 0
        x[...] = 1
    t = shared_memory.tensors(flat)
    flat[0][0, 0] = 42.0  # Visible through the tensor: no copy was made.
    assert float(t[0][0, 0]) == 42.0 and t[1].dtype == tf.uint8
    del flat
    assert float(tf.reduce_sum(t[0])) == 42.0 + 14


def test_partial_writes_of_a_killed_sender_are_never_read():
    """A sender killed inside its copy leaves the slot FREE; the restarted
    sender reuses it and only whole enqueues reach the learner."""
    slots = shared_memory.SharedSlots(SPEC, 2, 1, _ctx())
    view = slots.slot(0)
    view[0][:] = 99  # Half an enqueue, never marked FULL.
    receiver = shared_memory.SlotReceiver([slots], SPEC)
    assert receiver.waiting() == 0
    shared_memory.SlotSender(slots, _Client()).enqueue(
        _trajectories([11, 12]))
    assert _check_batch(receiver.next_batch(2), 2) == [11, 12]


def test_sigkilled_senders_never_deliver_partial_trajectories():
    """SIGKILL senders of 4 MB enqueues at random moments (six times, some
    inside a copy); every trajectory read is whole and what a sender built,
    and the restarted senders keep the data flowing."""
    ctx = _ctx()
    n = 4
    slots = [shared_memory.SharedSlots(BIG_SPEC, n, 1, ctx)
             for _ in range(2)]
    busy = [ctx.RawArray("i", 1) for _ in range(2)]
    receiver = shared_memory.SlotReceiver(slots, BIG_SPEC)
    received, bad = [], []

    def drain():
        while True:
            flat = receiver.next_batch(2)
            if flat is None:
                return
            batch = tf.nest.pack_sequence_as(BIG_SPEC, flat)
            for k, x in zip(batch["k"], batch["x"]):
                received.append(int(k))
                if not np.array_equal(x, _big([k])["x"][0]):
                    bad.append(int(k))

    drainer = threading.Thread(target=drain, daemon=True)
    drainer.start()
    seed = [0]

    def spawn(a):
        p = ctx.Process(target=_send_big_forever,
                        args=(slots[a], seed[0] * 100_000, n, busy[a]))
        seed[0] += 1
        p.start()
        return p

    actors = [spawn(0), spawn(1)]
    rng = random.Random(0)
    kills = mid = 0
    try:
        # A bound, not a speed check: each restarted sender imports
        # TensorFlow first, which takes tens of seconds on a loaded machine.
        deadline = time.monotonic() + 240
        while kills < 6 and time.monotonic() < deadline:
            a = kills % 2
            while busy[a][0] == 0 and time.monotonic() < deadline:
                time.sleep(0.05)  # Still importing: not sending yet.
            time.sleep(rng.uniform(0.05, 0.3))
            mid += busy[a][0] == 1
            os.kill(actors[a].pid, 9)
            actors[a].join(10)
            kills += 1
            busy[a][0] = 0
            actors[a] = spawn(a)
        time.sleep(1.0)
    finally:
        for p in actors:
            p.kill()
            p.join(10)
        receiver.close()
        drainer.join(10)
    assert kills == 6 and mid >= 1, (kills, mid)
    assert received and not bad, (len(received), bad[:5])
    assert len(set(received)) == len(received)


def test_slot_count():
    # (capacity, envs per actor, actors) -> slots per actor.
    assert shared_memory.num_slots_for(32, 64, 2) == 1  # Pong default.
    assert shared_memory.num_slots_for(32, 16, 1) == 2
    assert shared_memory.num_slots_for(33, 16, 1) == 3
    assert shared_memory.num_slots_for(8, 1, 2) == 4
    assert shared_memory.num_slots_for(8, 1, 100) == 1


TEXT_SPEC = {"k": tf.TensorSpec([], tf.int64),
             "instruction": tf.TensorSpec([3], tf.string)}


def test_text_observations_cross_whole_and_too_long_ones_are_refused():
    """Strings (a DMLab instruction per step) cross shared memory as UTF-8
    bytes with their length: empty, non-ASCII, trailing zero bytes and
    exactly MAX_TEXT_BYTES come back as they were; one byte more is refused
    with one sentence and nothing reaches the learner."""
    width = shared_memory.MAX_TEXT_BYTES
    slots = shared_memory.SharedSlots(TEXT_SPEC, 2, 1, _ctx())
    sender = shared_memory.SlotSender(slots, _Client())
    receiver = shared_memory.SlotReceiver([slots], TEXT_SPEC)
    text = np.array([["Pick the red object.", "", "caf\u00e9 \u2192 ok"],
                     [b"ends in zeros\0\0", "x" * width, b"\0"]], object)
    sender.enqueue({"k": np.array([1, 2]), "instruction": text})
    batch = tf.nest.pack_sequence_as(
        TEXT_SPEC, shared_memory.tensors(receiver.next_batch(2)))
    assert batch["instruction"].dtype == tf.string
    assert batch["instruction"].shape == (2, 3)
    expected = [[x.encode() if isinstance(x, str) else x for x in row]
                for row in text]
    assert batch["instruction"].numpy().tolist() == expected
    assert [int(k) for k in batch["k"]] == [1, 2]
    long = text.copy()
    long[1, 1] = "x" * (width + 1)
    with pytest.raises(ValueError) as error:
        sender.enqueue({"k": np.array([3, 4]), "instruction": long})
    assert str(error.value) == (
        f"a string observation of {width + 1:,} bytes (an instruction?) "
        f"does not fit the {width:,} bytes shared memory holds per string "
        "(transport.shared_memory.MAX_TEXT_BYTES)")
    assert receiver.waiting() == 0  # The slot was never marked FULL.
    assert (slots.header[:, 0] == shared_memory.FREE).all()


_GRPC_SCRIPT = r"""
import numpy as np
import tensorflow as tf
from impala_tf import transport
from impala_tf.transport import grpc
from tests import test_transport as t

address = f"localhost:{grpc.pick_free_port()}"
grpc.start_learner_server(address)
specs = [(tf.float32, tf.TensorShape([2, 3])), (tf.int32, tf.TensorShape([]))]
server = grpc.LearnerServer(t.SPEC, specs, capacity=8)
weights = [tf.Variable(np.arange(6, dtype=np.float32).reshape(2, 3)),
           tf.Variable(7)]
server.publish(weights, 5)
client = grpc.ActorClient(address, t.SPEC, specs, 8, connect_timeout_s=30)
assert isinstance(client, transport.ActorTransport)
assert isinstance(server, transport.WeightPublisher)
pulled, version = client.pull_weights()
assert version == 5, version
np.testing.assert_array_equal(pulled[0], weights[0].numpy())
assert int(pulled[1]) == 7
weights[0].assign_add(tf.ones([2, 3]))
server.publish(weights, 6)
pulled, version = client.pull_weights()
assert version == 6 and float(pulled[0][0, 0]) == 1.0
client.enqueue(t._trajectories([1, 2, 3]))
client.enqueue(t._trajectories([4, 5, 6]))
batches = server.batches(4, prefetch=1)
assert isinstance(batches, transport.BatchSource)
batch = next(batches)
assert all(isinstance(x, tf.Tensor) for x in tf.nest.flatten(batch))
assert batch["frame"].shape == (4, 3, 5, 5, 4)
assert batch["frame"].dtype == tf.uint8
assert t._check_batch([batch[k].numpy() for k in sorted(t.SPEC)], 4) == [
    1, 2, 3, 4]
batches.close()
try:
    next(batches)
    raise AssertionError("the source did not end")
except StopIteration:
    pass
try:
    client.pull_weights()
    raise AssertionError("the client did not see the close")
except tf.errors.CancelledError:
    pass
client.close()
print("GRPC-OK")
"""


@procs.requires_netns
def test_grpc_weights_round_trip_and_a_batch_crosses():
    """A real server and client: published weights are pulled with their
    version, unrolls cross as a batch of tensors of the nest (the same kind
    as shared memory's), and closing the source ends both sides."""
    code, out = testing.run_isolated_script(
        '"$PY" -c "$SCRIPT"', timeout=180, env={"SCRIPT": _GRPC_SCRIPT})
    assert code == 0 and "GRPC-OK" in out, out[-3000:]


class _Flaky:
    """A gRPC client stand-in: `ok_first` calls succeed, then each raises
    `error` (None: never)."""

    def __init__(self, error=None, closed=False, ok_first=0):
        self.error, self.closed, self.ok = error, closed, ok_first
        self.sent = 0

    def _maybe_fail(self):
        if self.error is not None and self.ok <= 0:
            raise self.error(None, None, "gone")
        self.ok -= 1

    def pull_weights(self):
        self._maybe_fail()
        return [], 3

    def enqueue(self, trajectories):
        self._maybe_fail()
        self.sent += 1

    def queue_closed(self):
        if self.error is tf.errors.UnavailableError:
            raise tf.errors.UnavailableError(None, None, "gone")
        return self.closed

    def close(self):
        pass


def test_reconnecting_client_reconnects_then_ends_when_the_learner_is_done():
    first = _Flaky(tf.errors.UnavailableError)  # Vanishes at once.
    second = _Flaky(tf.errors.CancelledError, closed=True, ok_first=2)
    clients, lines = [first, second], []
    client = reconnecting.ReconnectingClient(
        lambda: clients.pop(0), "learner:1", "actor 0", log=lines.append)
    assert isinstance(client, transport.ActorTransport)
    assert client.pull_weights() == ([], 3)  # After one reconnection.
    assert any("lost the learner" in line for line in lines)
    assert "reconnected" in lines[-1]
    client.enqueue({"k": np.zeros(2)})
    assert second.sent == 1
    # Then the learner closes its queue: a normal end.
    with pytest.raises(tf.errors.CancelledError):
        client.pull_weights()
    assert "the learner is done" in lines[-1]


def test_reconnecting_client_stops_if_the_learner_does_not_come_back():
    def connect():
        if attempts:
            raise tf.errors.UnavailableError(None, None, "nobody there")
        attempts.append(1)
        return _Flaky(tf.errors.UnavailableError)

    attempts, lines = [], []
    client = reconnecting.ReconnectingClient(connect, "learner:1", "actor 0",
                                             log=lines.append)
    with pytest.raises(tf.errors.CancelledError):
        client.enqueue({"k": np.zeros(2)})
    assert "did not come back" in lines[-1]
