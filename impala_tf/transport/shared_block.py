"""Memory shared with the processes a learner spawns: one block, laid out.

`SharedBlock` is a `multiprocessing` RawArray holding a header of int64
words and then `copies` copies of a list of arrays, every array starting on
a 64-byte cache line. The learner creates it and hands it to a child
process when it spawns it; each process maps numpy views over the same
memory on first use (`words`, `arrays`). `shared_memory.SharedSlots` (an
actor's trajectory slots) and `shared_weights.SharedWeights` (the weights
all local actors read) are its two layouts.

Picklable only while spawning a process (multiprocessing's rule for shared
memory); the child maps the same memory.
"""

import math

import numpy as np

ALIGN = 64  # Bytes; every array starts on a cache line.
# Waiting polls with this back-off (seconds), negligible beside an unroll.
POLL_MIN_S, POLL_MAX_S = 0.0005, 0.005


def round_up(x):
    """`x` rounded up to a multiple of ALIGN."""
    return -(-x // ALIGN) * ALIGN


def aligned_empty(shape, dtype):
    """np.empty(shape, dtype) starting on a 64-byte boundary; an object
    array (strings, which TensorFlow copies anyway) as plain np.empty."""
    dtype = np.dtype(dtype)
    if dtype == object:
        return np.empty(shape, dtype)
    nbytes = math.prod(shape) * dtype.itemsize
    raw = np.empty(nbytes + ALIGN, np.uint8)
    start = (-raw.ctypes.data) % ALIGN
    return raw[start:start + nbytes].view(dtype).reshape(shape)


class SharedBlock:
    """A header and `copies` copies of a list of arrays, in shared memory.

    Args:
      leaves: list of (numpy dtype, shape) of the arrays of one copy.
      header_words: int64 words before the first copy.
      copies: copies of the arrays.
      ctx: the `multiprocessing` context that will spawn the processes.
    """

    def __init__(self, leaves, header_words, copies, ctx):
        self._leaves = [(np.dtype(d), tuple(s)) for d, s in leaves]
        self._header_words, self.copies = int(header_words), int(copies)
        self._offsets, offset = [], 0
        for dtype, shape in self._leaves:
            self._offsets.append(offset)
            offset = round_up(offset + dtype.itemsize * math.prod(shape))
        self.copy_bytes = offset  # One copy of the arrays, padded.
        self._start = round_up(self._header_words * 8)
        self._raw = ctx.RawArray(
            "B", self._start + self.copies * self.copy_bytes + ALIGN)
        self._views = None

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_views"] = None  # Each process maps its own.
        return state

    def _map(self):
        if self._views is None:
            buf = np.frombuffer(self._raw, np.uint8)
            buf = buf[(-buf.ctypes.data) % ALIGN:]
            words = buf[:self._header_words * 8].view(np.int64)
            copies = []
            for k in range(self.copies):
                base = self._start + k * self.copy_bytes
                copies.append([
                    buf[base + off:base + off + dt.itemsize * math.prod(sh)]
                    .view(dt).reshape(sh)
                    for off, (dt, sh) in zip(self._offsets, self._leaves)])
            self._views = words, copies
        return self._views

    @property
    def words(self):
        """int64 [header_words]: the header, a view."""
        return self._map()[0]

    def arrays(self, k):
        """Copy k: a list of numpy views, one per leaf."""
        return self._map()[1][k]
