"""Tests for impala_tf.transport.shared_memory: trajectories from real actor
processes (multiprocessing spawn, as the supervisor starts actors) through
real shared memory (text included), back-pressure, the learner's close, and
senders killed mid-copy. No server at all (the weights' block:
tests/test_shared_weights.py); some senders use a stand-in weight source
that only answers `queue_closed`.
"""

import multiprocessing
import os
import random
import threading
import time

import numpy as np
import pytest
import tensorflow as tf

from impala_tf.transport import shared_block
from impala_tf.transport import shared_memory
from impala_tf.transport import shared_weights
from tests import transport_data as t
from tests.transport_data import SPEC

BIG = 1 << 18  # Floats per trajectory in the kill test: 1 MB.
BIG_SPEC = {"k": tf.TensorSpec([], tf.int64),
            "x": tf.TensorSpec([BIG], tf.float32)}


def _big(ks):
    ks = np.asarray(ks, np.int64)
    return {"k": ks, "x": (ks[:, None] + np.arange(BIG)).astype(np.float32)}


def _send(slots, first_k, count, n):
    """Child process: sends `count` enqueues of n trajectories from first_k."""
    sender = shared_memory.SlotSender(slots, t.StandInClient())
    for j in range(count):
        sender.enqueue(t.trajectories(range(first_k + j * n,
                                           first_k + (j + 1) * n)))


def _send_big_forever(slots, first_k, n, busy):
    """Child process: sends batches of 1 MB trajectories until killed;
    busy[0] is 0 while starting, 1 inside an enqueue, 2 between them."""
    sender = shared_memory.SlotSender(slots, t.StandInClient())
    data = _big(range(first_k, first_k + n))
    while True:
        busy[0] = 1
        sender.enqueue(data)
        busy[0] = 2
        data["k"] += n
        data["x"] += n


def _ctx():
    return multiprocessing.get_context("spawn")


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
            got += t.check_batch(receiver.next_batch(4), 4)
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
    sender.enqueue(t.trajectories([1, 2]))  # Fills the only slot.
    done = []

    def second():
        try:
            sender.enqueue(t.trajectories([3, 4]))
            done.append("sent")
        except tf.errors.CancelledError:
            done.append("cancelled")

    thread = threading.Thread(target=second)
    thread.start()
    # Back-pressure: no free slot, so the second enqueue waits.
    assert not (slots.header[:, 0] == shared_memory.FREE).any()
    thread.join(0.3)
    assert thread.is_alive() and not done
    receiver = shared_memory.SlotReceiver([slots], SPEC)
    assert t.check_batch(receiver.next_batch(2), 2) == [1, 2]
    thread.join(5)
    assert done == ["sent"]  # The slot is full again; the learner stops.
    thread = threading.Thread(target=second)
    done.clear()
    thread.start()
    weights.close()  # The learner is done.
    thread.join(5)
    assert done == ["cancelled"]


def test_tensors_share_aligned_memory():
    flat = [shared_block.aligned_empty((3, 5), np.float32),
            shared_block.aligned_empty((7,), np.uint8)]
    for x in flat:
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
    shared_memory.SlotSender(slots, t.StandInClient()).enqueue(
        t.trajectories([11, 12]))
    assert t.check_batch(receiver.next_batch(2), 2) == [11, 12]


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
        while not received and time.monotonic() < deadline:
            time.sleep(0.05)  # Until the learner side has a batch.
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
    sender = shared_memory.SlotSender(slots, t.StandInClient())
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
