"""Batches copied onto the learner's device ahead of the step that uses them.

The role of the paper's StagingArea: while the GPU runs step k, batch k+1 is
already being copied to it, so a step never waits for a host-to-device copy.
The trainer uses it only where a GPU is visible; on CPU a copy would only
cost time.
"""

import queue
import threading

import tensorflow as tf

_END = object()


def prefetch_to_device(batches, device, buffer_size=1):
    """Yields the nests of `batches`, in order, already on `device`.

    batches: an iterable of nests of tensors or arrays (e.g.
      `types.Trajectory` batches, each [B, T+1, ...]); read by one
      background thread.
    device: a TensorFlow device name, e.g. '/GPU:0'.
    buffer_size: batches copied ahead (at least 1).

    Returns an iterator that ends when `batches` ends and re-raises, in the
    caller's thread, an exception `batches` raised. Copies carry no
    gradient. Its `close()` closes `batches` (if it has a `close`, like a
    transport's batch source) and ends the iteration; the copying thread
    (a daemon) stops when the source ends or fails.
    """
    return _Prefetcher(batches, device, max(1, int(buffer_size)))


class _Prefetcher:
    """`prefetch_to_device`'s iterator: a copying thread, a bounded queue."""

    def __init__(self, source, device, buffer_size):
        self._source = source
        self._ready = queue.Queue(maxsize=buffer_size)
        self._closed = threading.Event()
        self._thread = threading.Thread(
            target=self._copy, args=(iter(source), device), daemon=True,
            name="prefetch-to-device")
        self._thread.start()

    def _put(self, item):
        while not self._closed.is_set():
            try:
                self._ready.put(item, timeout=0.1)
                return
            except queue.Full:
                pass

    def _copy(self, source, device):
        try:
            for batch in source:
                with tf.device(device):
                    copied = tf.nest.map_structure(tf.identity, batch)
                self._put((copied, None))
        except Exception as e:  # pylint: disable=broad-except
            self._put((_END, e))
            return
        self._put((_END, None))

    def __iter__(self):
        return self

    def __next__(self):
        while True:
            if self._closed.is_set():
                raise StopIteration
            try:
                batch, error = self._ready.get(timeout=0.1)
                break
            except queue.Empty:
                pass
        if batch is _END:
            self._ready.put((_END, error))  # Later calls end the same way.
            if error is not None:
                raise error
            raise StopIteration
        return batch

    def close(self):
        """Closes the source (if it can be) and ends the iteration."""
        self._closed.set()
        close = getattr(self._source, "close", None)
        if close is not None:
            close()
