"""Learner-side experience replay (paper Section 5.2.2, Table D.3).

The buffer sits on the learner, between the transport's batch source and
the step. Each batch of B trajectories holds exactly k = round(proportion *
B) trajectories drawn uniformly at random (without replacement within the
batch) from the buffer, and B - k fresh ones from the actors; every fresh
trajectory then enters the buffer, whose oldest leaves once it holds
`capacity` (first in, first out). The paper's setting is proportion 0.5,
capacity 10,000, unroll 100, rho-bar = c-bar = 1.

While the buffer holds fewer than B trajectories, batches are all fresh.
A replayed trajectory is exactly what the actor sent, bit for bit (the
behaviour logits, the initial core state, the level id and the policy
version included), so the learner's V-trace corrects it against the current
policy. The buffer is not saved in checkpoints: a resumed run refills it
from fresh trajectories (its first batches are all fresh again).

Memory. Stacked Atari frames ([T+1, H, W, C], newest frame last) repeat
C - 1 of their C planes from one step to the next; `compress_frames`
stores each distinct plane once (a 20-step Pong unroll: 24 planes of 84x84
instead of 84), and `decompress_frames` rebuilds them exactly. Other leaves
are stored as they are.

Shapes: a batch is the `types.Trajectory` nest, each leaf [B, T+1, ...]
(`tf.Tensor`s, no gradient); replayed trajectories come last in it and are
marked in the batch itself (`Trajectory.replayed` True), so the learner
counts only fresh trajectories as played frames and no stage has to keep
batches in order for that record to stay right.
"""

import math

import numpy as np
import tensorflow as tf

from impala_tf import errors
from impala_tf import transport
from impala_tf.transport import shared_block
from impala_tf.transport import shared_memory

# Bytes assumed per string (a DMLab instruction) in the memory estimate.
_STRING_BYTES = 64


class ReplayError(errors.UsageError, ValueError):
    """Replay settings that cannot work here (one sentence)."""


def replayed_per_batch(proportion, batch_size):
    """k = round(proportion * batch_size): replayed trajectories per batch.

    Raises ReplayError unless 0 <= proportion < 1, k < batch_size (a
    batch must hold a fresh trajectory, or the buffer never fills) and, for
    a proportion above 0, k >= 1 (else the buffer fills and is never
    sampled).
    """
    if not 0.0 <= proportion < 1.0:
        raise ReplayError(f"--replay_proportion must be in [0, 1), got "
                          f"{proportion}")
    k = int(round(proportion * batch_size))
    if proportion > 0 and k == 0:
        raise ReplayError(
            f"--replay_proportion={proportion} replays round({proportion} x "
            f"{batch_size}) = 0 trajectories of a batch of {batch_size}; "
            f"use at least {0.5 / batch_size:.3g} (one trajectory) or 0 "
            "to turn replay off")
    if k >= batch_size:
        raise ReplayError(
            f"--replay_proportion={proportion} replays all {batch_size} "
            "trajectories of a batch; at least one must be fresh")
    return k


# -- Frames, each distinct plane once. ----------------------------------------

def compress_frames(frames):
    """Stacked frames -> (planes, starts), sharing the planes steps repeat.

    frames: uint8 [T+1, H, W, C], the stack's newest plane last. Returns
    planes [P, H, W] (same dtype) and starts int32 [T+1] such that
    frames[t] == moveaxis(planes[starts[t]:starts[t] + C], 0, -1). A step
    whose first C - 1 planes are the previous step's last C - 1 adds one
    plane; any other step (a new game, or unstacked frames) adds C. Exact
    for any input: sharing is decided by comparing the planes.
    """
    # Planes first ([T+1, C, H, W], one transposing copy), so the
    # comparison and the gather below read contiguous planes.
    by_plane = np.ascontiguousarray(np.moveaxis(np.asarray(frames), -1, 1))
    steps, channels = by_plane.shape[:2]
    if channels > 1 and steps > 1:
        shifted = np.all((by_plane[1:, :-1] == by_plane[:-1, 1:]).reshape(
            steps - 1, -1), axis=1)
    else:
        shifted = np.zeros([max(steps - 1, 0)], bool)
    # Planes each step adds: its newest if shifted, else all C.
    added = np.where(np.concatenate([[False], shifted]), 1, channels)
    ends = np.cumsum(added)
    starts = (ends - channels).astype(np.int32)
    step_of = np.repeat(np.arange(steps), added)
    plane_of = np.arange(ends[-1]) - np.repeat(ends - added, added) + (
        channels - np.repeat(added, added))
    return by_plane[step_of, plane_of], starts


def decompress_frames(planes, starts, channels, out=None):
    """`compress_frames`' inverse: uint8 [T+1, H, W, C], written into
    `out` (an array of that shape, e.g. a row of a batch) or a new
    array, which it returns."""
    if out is None:
        out = np.empty((len(starts),) + planes.shape[1:] + (channels,),
                       planes.dtype)
    for c in range(channels):  # One channel of every step at a time.
        out[..., c] = planes[starts + c]
    return out


# -- Memory. --------------------------------------------------------------

def trajectory_bytes(traj_spec, stacked=True):
    """Bytes one stored trajectory takes (int).

    traj_spec: the `types.Trajectory` nest of `tf.TensorSpec`s, each
    [T+1, ...] (`actor.trajectory_spec`). With `stacked`, the frames are
    counted as `compress_frames` stores a trajectory with no new game in
    it (T+1 + C-1 planes); without, as T+1 full stacks (the most a
    trajectory can take).
    """
    frame = traj_spec.env_outputs.observation["frame"]
    total = 0
    for spec in tf.nest.flatten(traj_spec):
        shape = spec.shape.as_list()
        if spec is frame and stacked and len(shape) == 4:
            steps, height, width, channels = shape
            total += (steps + channels - 1) * height * width * (
                spec.dtype.size)
            continue
        size = _STRING_BYTES if spec.dtype == tf.string else spec.dtype.size
        total += math.prod(shape) * size
    return total


def available_memory_bytes():
    """MemAvailable from /proc/meminfo (int bytes), or None if unknown."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def check_fits(traj_spec, capacity, stacked_frames, available=None):
    """(typical, most) bytes of a full buffer; ReplayError if it cannot fit.

    stacked_frames: whether the frames' last axis is a stack of frames
    (Atari), which the buffer stores once per distinct frame; otherwise
    (DMLab's RGB) every frame is counted whole. typical: every stored
    trajectory within one game; most: every step a new game. Refuses when
    `typical` exceeds `available` (default: the machine's MemAvailable).
    """
    if capacity < 1:
        raise ReplayError(f"--replay_capacity must be at least 1, got "
                          f"{capacity}")
    typical = capacity * trajectory_bytes(traj_spec, stacked=stacked_frames)
    most = capacity * trajectory_bytes(traj_spec, stacked=False)
    if available is None:
        available = available_memory_bytes()
    if available is not None and typical > available:
        raise ReplayError(
            f"a replay buffer of {capacity:,} trajectories needs about "
            f"{typical / 2 ** 30:.1f} GiB but this machine has "
            f"{available / 2 ** 30:.1f} GiB available; lower "
            "--replay_capacity")
    return typical, most


# -- The buffer. ---------------------------------------------------------

class ReplayBuffer:
    """Trajectories, first in first out, sampled uniformly.

    Args:
      capacity: trajectories held; the oldest leaves when a new one comes.
      frame_index: position of the frame leaf in `tf.nest.flatten` of a
        trajectory (stored with `compress_frames`), or None.
      seed: for the sampling generator.

    A trajectory is a flat list of numpy arrays (a `tf.nest.flatten`ed
    `types.Trajectory`, each [T+1, ...] or []); `add` copies it.
    """

    def __init__(self, capacity, frame_index=None, seed=0):
        self.capacity = int(capacity)
        self._frame = frame_index
        self._items = [None] * self.capacity
        self._bytes = [0] * self.capacity
        self._next = 0
        self.size = 0
        self.nbytes = 0  # Bytes held now.
        self._rng = np.random.default_rng(seed)

    def add(self, flat):
        """Stores a copy of one trajectory (flat list of arrays)."""
        item = []
        for i, leaf in enumerate(flat):
            if i == self._frame:
                planes, starts = compress_frames(leaf)
                item.append((planes, starts, leaf.shape[-1]))
            else:
                item.append(np.array(leaf, copy=True))
        nbytes = sum(sum(x.nbytes for x in leaf[:2]) if isinstance(
            leaf, tuple) else leaf.nbytes for leaf in item)
        self.nbytes += nbytes - self._bytes[self._next]
        self._items[self._next], self._bytes[self._next] = item, nbytes
        self._next = (self._next + 1) % self.capacity
        self.size = min(self.size + 1, self.capacity)

    def get(self, age, out=None):
        """The trajectory added `age` additions ago (0: the newest), as
        the flat list `add` took: new arrays, or written into `out` (a
        flat list of arrays of the same shapes, e.g. one row of each leaf
        of a batch), which it returns."""
        if not 0 <= age < self.size:
            raise IndexError(f"age {age} outside 0..{self.size - 1}")
        item = self._items[(self._next - 1 - age) % self.capacity]
        if out is None:
            return [decompress_frames(*leaf) if isinstance(leaf, tuple)
                    else leaf.copy() for leaf in item]
        for leaf, dest in zip(item, out):
            if isinstance(leaf, tuple):
                decompress_frames(*leaf, out=dest)
            else:
                dest[...] = leaf
        return out

    def sample_ages(self, k):
        """k distinct ages (ints, for `get`) drawn uniformly, k <= size."""
        return [int(a) for a in self._rng.choice(self.size, size=k,
                                                 replace=False)]

    def sample(self, k):
        """k distinct trajectories drawn uniformly (flat lists), k <= size."""
        return [self.get(a) for a in self.sample_ages(k)]


def _frame_index(traj_spec):
    marks = tf.nest.map_structure(lambda _: False, traj_spec)
    observation = dict(marks.env_outputs.observation, frame=True)
    marks = marks._replace(env_outputs=marks.env_outputs._replace(
        observation=observation))
    return tf.nest.flatten(marks).index(True)


def _replayed_index(traj_spec):
    marks = tf.nest.map_structure(lambda _: False, traj_spec)
    return tf.nest.flatten(marks._replace(replayed=True)).index(True)


class ReplayBatchSource(transport.BatchSource):
    """A `transport.BatchSource` mixing fresh and replayed trajectories.

    Args:
      fresh: the transport's `BatchSource` (batches of any size; read
        `batch_size - k` at a time once the buffer is warm).
      traj_spec: the `types.Trajectory` nest of `tf.TensorSpec`s, each
        [T+1, ...].
      batch_size: B, trajectories per batch handed on.
      proportion: the replayed share (`replayed_per_batch`).
      capacity: trajectories the buffer holds.
      seed: the sampling generator's seed.

    `next()` gives the `types.Trajectory` nest of `tf.Tensor`s, each
    [B, T+1, ...]: fresh trajectories first, in arrival order, then the
    replayed ones, whose `replayed` leaf is True (the buffer keeps them as
    they arrived, unmarked). `stats()` describes the buffer.
    """

    def __init__(self, fresh, traj_spec, batch_size, proportion, capacity,
                 seed=0):
        self._fresh = fresh
        self._structure = traj_spec
        self.batch_size = int(batch_size)
        self.replayed_per_batch = replayed_per_batch(proportion, batch_size)
        self.buffer = ReplayBuffer(capacity, _frame_index(traj_spec), seed)
        self._replayed = _replayed_index(traj_spec)
        self._pending = None  # Flat list of arrays [n, ...] not yet used.

    @property
    def fresh_per_batch(self):
        """Fresh trajectories per batch once the buffer is warm."""
        return self.batch_size - self.replayed_per_batch

    def _fresh_rows(self, count):
        """Flat list of new arrays [B, ...] (one per leaf) whose first
        `count` rows are the next fresh trajectories, in arrival order."""
        flat, have = None, 0
        while have < count:
            if self._pending is None:
                batch = next(self._fresh)
                # np.asarray reads a tensor in place (.numpy() copies).
                self._pending = [np.asarray(x)
                                 for x in tf.nest.flatten(batch)]
            if flat is None:
                flat = [shared_block.aligned_empty(
                    (self.batch_size,) + x.shape[1:], x.dtype)
                    for x in self._pending]
            n = len(self._pending[0])
            use = min(n, count - have)
            for whole, x in zip(flat, self._pending):
                whole[have:have + use] = x[:use]
            self._pending = ([x[use:] for x in self._pending]
                             if use < n else None)
            have += use
        return flat

    def __next__(self):
        k = (self.replayed_per_batch
             if self.buffer.size >= self.batch_size else 0)
        n = self.batch_size - k
        flat = self._fresh_rows(n)
        # The replayed rows are written in place (no per-trajectory
        # copies), drawn before this batch's fresh trajectories enter.
        for row, age in enumerate(self.buffer.sample_ages(k), start=n):
            self.buffer.get(age, out=[whole[row, ...] for whole in flat])
        for i in range(n):
            self.buffer.add([whole[i] for whole in flat])
        mask = shared_block.aligned_empty([self.batch_size], bool)
        mask[:n], mask[n:] = False, True
        flat[self._replayed] = mask
        # The tensors take over the new arrays' memory (no copy).
        return tf.nest.pack_sequence_as(self._structure,
                                        shared_memory.tensors(flat))

    def stats(self):
        """The buffer now: dict with 'replay_size' (int trajectories held)
        and 'replay_bytes' (int bytes held)."""
        return {"replay_size": self.buffer.size,
                "replay_bytes": self.buffer.nbytes}

    def close(self):
        self._fresh.close()
