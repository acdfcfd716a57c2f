"""Trajectories from local actor processes to the learner in shared memory.

The gRPC path (`transport.grpc`) copies an unroll about six times on its way to a
batch: the actor's feed, the RunStep request, the socket twice, the queue's
split and `dequeue_many`'s concatenation. For actor processes on the
learner's own machine this module replaces it with one copy on each side:

  * `SharedSlots`: memory shared between the learner process and one actor
    process (a `multiprocessing` RawArray, created by the learner and handed
    to the actor when it is spawned; the same memory serves the actor's
    restarts). It holds `num_slots` slots of N trajectories (the actor's
    `envs_per_actor`), each leaf of the trajectory nest laid out [N, ...] as
    the actor's buffers are, plus a header per slot: its state (FREE, FULL)
    and the time it was filled.
  * `SlotSender` (actor side): `enqueue` waits for a FREE slot of its own,
    copies the N trajectories in, stamps it and marks it FULL. Weights still
    come over gRPC (`pull_weights` is the gRPC client's).
  * `SlotReceiver` (learner side): `batches(batch_size)` iterates over
    batches [B, ...] assembled from FULL slots, oldest first across actors,
    by a background thread; a slot whose N trajectories are all copied out
    goes back to FREE. The batch is copied once, into aligned memory that
    becomes TensorFlow tensors without another copy (DLPack); `tf.data`'s
    `from_generator` cost 3-5x more CPU per batch here (benchmarks/README).

`SlotSender` is an actor's `transport.ActorTransport`; `batches` is the
learner's `transport.BatchSource`, the same kind the gRPC queue gives.

Each slot has one writer at a time: the actor writes only FREE slots and
only the learner frees a FULL one, so no lock is needed and an actor killed
mid-copy leaves nothing half-visible: its slot is still FREE (the restarted
actor overwrites it) and slots it had filled are still read. State words are
written after the data; x86's stores are not reordered with one another,
and waiting on either side goes through system calls (sleeps). Waiting
polls: 0.5 ms back-off up to 5 ms when idle, negligible beside an unroll.

Only numeric trajectories fit (no string observations: `supported`); the
learner keeps the gRPC queue for remote actors either way.
"""

import math
import queue
import threading
import time

import numpy as np
import tensorflow as tf

from impala_tf.transport import ActorTransport
from impala_tf.transport import BatchSource

FREE, FULL = 0, 1
_STATE, _STAMP = 0, 1       # Header columns (int64).
_ALIGN = 64                 # Bytes; every leaf starts on a cache line.
_POLL_MIN_S, _POLL_MAX_S = 0.0005, 0.005
CLOSED_CHECK_S = 1.0        # A blocked sender asks the learner this often.


def supported(trajectory_spec):
    """True if every leaf of the trajectory spec is numeric (no strings)."""
    return all(s.dtype != tf.string for s in tf.nest.flatten(trajectory_spec))


def num_slots_for(queue_capacity, envs_per_actor, num_actors):
    """Slots per actor so that all actors together hold about
    `queue_capacity` trajectories, as the gRPC queue would (at least 1).

    With one slot an actor still acts its next unroll while the learner
    reads the previous one (the actor's own buffers are the other half of
    the double buffer).
    """
    per_actor = queue_capacity / max(1, num_actors)
    return max(1, math.ceil(per_actor / max(1, envs_per_actor)))


class SharedSlots:
    """Shared memory for one actor: `num_slots` slots of N trajectories.

    Args:
      trajectory_spec: nest of `tf.TensorSpec` for ONE trajectory (numeric).
      n: trajectories per slot (the actor's environments).
      num_slots: slots.
      ctx: the `multiprocessing` context that will spawn the actor.

    Picklable only while spawning a process (multiprocessing's rule for
    shared memory); the child maps the same memory.
    """

    def __init__(self, trajectory_spec, n, num_slots, ctx):
        if not supported(trajectory_spec):
            raise ValueError("shared-memory transport needs numeric "
                             "trajectories (no string observations)")
        self.n, self.num_slots = int(n), int(num_slots)
        leaves = tf.nest.flatten(trajectory_spec)
        self._leaves = [(np.dtype(s.dtype.as_numpy_dtype),
                         (self.n,) + tuple(s.shape.as_list()))
                        for s in leaves]
        offset = _round_up(self.num_slots * 2 * 8)
        self._offsets = []
        for dtype, shape in self._leaves:
            self._offsets.append(offset)
            offset = _round_up(offset + dtype.itemsize * math.prod(shape))
        self.slot_bytes = offset - self._offsets[0]
        self._raw = ctx.RawArray("B", self._offsets[0]
                                 + self.num_slots * self.slot_bytes + _ALIGN)
        self._views = None

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_views"] = None
        return state

    def _map(self):
        if self._views is None:
            buf = np.frombuffer(self._raw, np.uint8)
            shift = (-buf.ctypes.data) % _ALIGN
            buf = buf[shift:]
            header = buf[:self.num_slots * 16].view(np.int64).reshape(
                self.num_slots, 2)
            slots = []
            for k in range(self.num_slots):
                base = k * self.slot_bytes
                slots.append([
                    buf[base + off:base + off + dt.itemsize * math.prod(sh)]
                    .view(dt).reshape(sh)
                    for off, (dt, sh) in zip(self._offsets, self._leaves)])
            self._views = header, slots
        return self._views

    @property
    def header(self):
        """int64 [num_slots, 2]: (state, fill time in ns) per slot."""
        return self._map()[0]

    def slot(self, k):
        """Flat list of numpy views of slot k, each [N, ...]."""
        return self._map()[1][k]


def _round_up(x):
    return -(-x // _ALIGN) * _ALIGN


class SlotSender(ActorTransport):
    """An actor's side: trajectories into its `SharedSlots`, weights by gRPC.

    Args:
      slots: this actor's `SharedSlots`.
      client: the actor's `grpc.ActorClient` (weights, and whether the
        learner closed its queue); `close()` closes it.
    """

    def __init__(self, slots, client):
        self._slots, self._client = slots, client

    def pull_weights(self):
        return self._client.pull_weights()

    def _free_slot(self):
        header = self._slots.header
        wait, next_check = _POLL_MIN_S, time.monotonic() + CLOSED_CHECK_S
        while True:
            free = np.flatnonzero(header[:, _STATE] == FREE)
            if free.size:
                return int(free[0])
            if time.monotonic() >= next_check:
                if self._client.queue_closed():  # Raises if it is gone.
                    raise tf.errors.CancelledError(
                        None, None, "the learner closed its queue")
                next_check = time.monotonic() + CLOSED_CHECK_S
            time.sleep(wait)
            wait = min(_POLL_MAX_S, 2 * wait)

    def enqueue(self, trajectories):
        """Copies N unrolls (the trajectory nest, each [N, ...]) to a slot.

        Blocks while every slot of this actor is FULL (back-pressure);
        raises `tf.errors.CancelledError` once the learner closed its queue.
        """
        k = self._free_slot()
        for dst, src in zip(self._slots.slot(k),
                            tf.nest.flatten(trajectories)):
            np.copyto(dst, src)
        header = self._slots.header
        header[k, _STAMP] = time.monotonic_ns()
        header[k, _STATE] = FULL  # Last: the learner may read it from now.

    def close(self):
        self._client.close()


class SlotReceiver:
    """The learner's side: batches from the FULL slots of local actors.

    Args:
      slots: list of every local actor's `SharedSlots`.
      trajectory_spec: nest of `tf.TensorSpec` for one trajectory.
    """

    def __init__(self, slots, trajectory_spec):
        self._slots = list(slots)
        self._spec = trajectory_spec
        self._closed = threading.Event()
        self._cursor = {}  # (actor, slot) -> (fill time, trajectories read)

    def close(self):
        """Ends `batches`: its iterator stops (StopIteration)."""
        self._closed.set()

    def _refresh(self):
        for a, slots in enumerate(self._slots):
            header = slots.header
            for k in np.flatnonzero(header[:, _STATE] == FULL):
                self._cursor.setdefault((a, int(k)), [int(header[k, _STAMP]),
                                                      0])

    def _chunks(self, batch_size):
        """[(actor, slot, start, count)] covering batch_size trajectories,
        oldest slots first; None once closed."""
        chunks, need, wait = [], batch_size, _POLL_MIN_S
        while need:
            if self._closed.is_set():
                return None
            self._refresh()
            taken = {(a, k) for a, k, _, _ in chunks}
            ready = sorted((c[0], key) for key, c in self._cursor.items()
                           if key not in taken
                           and c[1] < self._slots[key[0]].n)
            if not ready:
                time.sleep(wait)
                wait = min(_POLL_MAX_S, 2 * wait)
                continue
            for _, (a, k) in ready:
                start = self._cursor[(a, k)][1]
                count = min(need, self._slots[a].n - start)
                chunks.append((a, k, start, count))
                need -= count
                if not need:
                    break
        return chunks

    def next_batch(self, batch_size):
        """Flat list of new numpy arrays [batch_size, ...], or None if closed.

        Copies the trajectories out (into 64-byte aligned memory of its own,
        which `tensors` hands to TensorFlow without a copy), then frees every
        slot read to its end.
        """
        chunks = self._chunks(batch_size)
        if chunks is None:
            return None
        first = self._slots[chunks[0][0]].slot(chunks[0][1])
        batch = [_aligned_empty((batch_size,) + x.shape[1:], x.dtype)
                 for x in first]
        row = 0
        for a, k, start, count in chunks:
            for dst, src in zip(batch, self._slots[a].slot(k)):
                dst[row:row + count] = src[start:start + count]
            row += count
            cursor = self._cursor[(a, k)]
            cursor[1] = start + count
            if cursor[1] == self._slots[a].n:
                del self._cursor[(a, k)]
                self._slots[a].header[k, _STATE] = FREE
        return batch

    def batches(self, batch_size, prefetch=1):
        """A `BatchSource` of batches: the trajectory nest of `tf.Tensor`s,
        each [batch_size, T+1, ...] (uint8 frames stay uint8; no gradient).

        A background thread assembles up to `prefetch` batches ahead; the
        iterator ends (StopIteration) after `close()` (here or on it). The tensors share the
        batch's memory (DLPack), so a batch costs one copy out of the slots.
        """
        return _Batches(self.next_batch, self._spec, self._closed,
                        batch_size, max(1, prefetch))

    def waiting(self):
        """Trajectories filled and not yet read (int)."""
        self._refresh()
        return sum(self._slots[a].n - c[1]
                   for (a, _), c in self._cursor.items())


def _aligned_empty(shape, dtype):
    """np.empty(shape, dtype) starting on a 64-byte boundary."""
    dtype = np.dtype(dtype)
    nbytes = math.prod(shape) * dtype.itemsize
    raw = np.empty(nbytes + _ALIGN, np.uint8)
    start = (-raw.ctypes.data) % _ALIGN
    return raw[start:start + nbytes].view(dtype).reshape(shape)


def tensors(flat):
    """Flat numpy arrays (C-contiguous) -> `tf.Tensor`s sharing their memory
    (the tensor keeps its array alive); a copy where DLPack cannot."""
    out = []
    for x in flat:
        try:
            out.append(tf.experimental.dlpack.from_dlpack(x.__dlpack__()))
        except (AttributeError, TypeError, ValueError,
                tf.errors.OpError):  # An older numpy or TensorFlow.
            out.append(tf.convert_to_tensor(x))
    return out


class _Batches(BatchSource):
    """`SlotReceiver.batches`' iterator: a producer thread and a bounded
    queue of ready batches."""

    def __init__(self, next_batch, spec, closed, batch_size, prefetch):
        self._closed = closed
        self._ready = queue.Queue(maxsize=prefetch)
        self._error = []
        self._thread = threading.Thread(
            target=self._produce, args=(next_batch, spec, closed, batch_size),
            daemon=True, name="shared-memory-batches")
        self._thread.start()

    def _produce(self, next_batch, spec, closed, batch_size):
        try:
            while True:
                flat = next_batch(batch_size)
                if flat is None:
                    return
                batch = tf.nest.pack_sequence_as(spec, tensors(flat))
                while not closed.is_set():
                    try:
                        self._ready.put(batch, timeout=0.1)
                        break
                    except queue.Full:
                        pass
        except Exception as e:  # pylint: disable=broad-except
            self._error.append(e)

    def close(self):
        self._closed.set()

    def __next__(self):
        while True:
            try:
                return self._ready.get(timeout=0.1)
            except queue.Empty:
                if self._error:
                    raise self._error[0]
                if not self._thread.is_alive():
                    raise StopIteration from None
