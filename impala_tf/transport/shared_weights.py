"""The learner's weights for its local actors, in shared memory.

`SharedWeights` is one block (`shared_block.SharedBlock`) for all actor
processes a learner starts on its machine: the weights twice (a seqlock
over two buffers, see the class), their version (the learner step) and a
"closed" word (the learner is done). The learner writes it through
`WeightWriter`, its `transport.WeightPublisher`, after every update, from
inside its `tf.function` step (a `tf.numpy_function`), so
`Learner(publish=...)` works as with the gRPC server; actors read it
through `WeightReader` (what `shared_memory.SlotSender` pulls from)
without locks: a torn copy is detected and retried, and nothing an actor
does (or dies doing) can block the learner. No network port is involved.

Cost (benchmarks/README.md, `benchmarks.publish_speed`): for the shallow
agent's 2.6 MB of weights a publication takes 0.8 ms a step (0.55-0.65 ms
more than the gRPC server's assignments; about 0.5% of a batch-32 step, 2%
of a batch-8 one), and an actor's pull 0.07 ms against 0.7-0.9 ms over
gRPC.
"""

import multiprocessing
import time

import numpy as np
import tensorflow as tf

from impala_tf.transport import WeightPublisher
from impala_tf.transport.shared_block import POLL_MAX_S
from impala_tf.transport.shared_block import POLL_MIN_S
from impala_tf.transport.shared_block import SharedBlock


# SharedWeights header words (int64).
_PUBLISHED, _CLOSED = 0, 1          # Publications so far; learner done.
_SEQ, _VERSION = 2, 3               # + 2 * buffer: its sequence, version.
_HEADER_WORDS = 6
_READ_ATTEMPTS = 100


class SharedWeights(SharedBlock):
    """The learner's weights in memory shared with its local actors.

    Two buffers of every weight, each with a sequence word and the version
    (learner step) it holds, a count of publications and a "closed" word
    (the learner is done). One writer, the learner (`write`, `close`);
    any number of readers (`read`), none of which ever blocks it:

      * `write` fills the buffer that is not the latest (publication p
        goes to buffer p % 2): it makes the buffer's sequence odd, copies
        the weights in, stores the version, makes the sequence even again,
        and only then counts the publication. x86 does not reorder stores
        with stores, nor loads with loads.
      * `read` copies the latest buffer out between two reads of its
        sequence; if the sequence was odd or changed (the learner came
        round to that buffer again, two publications during one copy),
        the copy may be torn and it reads again. A reader killed mid-copy
        leaves nothing behind: it never writes.

    Args:
      variable_specs: list of (dtype, shape) of the agent's trainable
        variables, in their fixed order (`policy.variable_specs`).
      ctx: the `multiprocessing` context that will spawn the actors
        (default: "spawn", the supervisor's).

    Picklable only while spawning a process, as `SharedSlots`.
    """

    def __init__(self, variable_specs, ctx=None):
        leaves = [(tf.as_dtype(d).as_numpy_dtype,
                   tuple(tf.TensorShape(sh).as_list()))
                  for d, sh in variable_specs]
        super().__init__(leaves, _HEADER_WORDS, 2,
                         ctx or multiprocessing.get_context("spawn"))
        self.torn_reads = 0  # This process's reads that had to retry.

    def write(self, arrays, version):
        """Publishes `arrays` (the weights, in order) as `version` (int).
        The learner's only: one writer."""
        header, b = self.words, int(self.words[_PUBLISHED]) % 2
        seq = _SEQ + 2 * b
        header[seq] += 1  # Odd: being written.
        for dst, src in zip(self.arrays(b), arrays):
            np.copyto(dst, np.asarray(src).reshape(dst.shape))
        header[_VERSION + 2 * b] = int(version)
        header[seq] += 1  # Even: whole.
        header[_PUBLISHED] += 1

    def read(self):
        """(list of new np.ndarray, int version): the latest publication,
        copied whole; None if nothing was published yet, or if
        `_READ_ATTEMPTS` copies in a row were torn (a writer killed
        mid-write; the caller waits and tries again)."""
        header = self.words
        for _ in range(_READ_ATTEMPTS):
            published = int(header[_PUBLISHED])
            if published == 0:
                return None
            b = (published - 1) % 2
            seq = int(header[_SEQ + 2 * b])
            if seq % 2 == 0:
                out = self._copy(self.arrays(b))
                version = int(header[_VERSION + 2 * b])
                if int(header[_SEQ + 2 * b]) == seq:
                    return out, version
            self.torn_reads += 1
        return None

    def latest_version(self):
        """The version (learner step) of the latest publication, read
        without copying the weights; None before the first. A publication
        under way may already show its newer version."""
        published = int(self.words[_PUBLISHED])
        if published == 0:
            return None
        return int(self.words[_VERSION + 2 * ((published - 1) % 2)])

    @staticmethod
    def _copy(views):
        return [np.array(x) for x in views]

    def close(self):
        """The learner is done: readers raise `tf.errors.CancelledError`."""
        self.words[_CLOSED] = 1

    @property
    def closed(self):
        return bool(self.words[_CLOSED])


class WeightWriter(WeightPublisher):
    """The learner's `transport.WeightPublisher` into `SharedWeights`.

    `publish` works eagerly and inside the learner's `tf.function` step: the
    copy runs as a `tf.numpy_function` (host memory; the variables' values
    are read after the update, as the gRPC publisher's assignments are).
    """

    def __init__(self, weights):
        self.weights = weights

    def publish(self, variables, version):
        values = [v.read_value() if hasattr(v, "read_value")
                  else tf.convert_to_tensor(v) for v in variables]
        tf.numpy_function(self._write, [tf.cast(version, tf.int64)] + values,
                          [], stateful=True, name="publish_weights")

    def _write(self, version, *arrays):
        self.weights.write(arrays, int(version))

    def close(self):
        """Tells the actors that the learner is done."""
        self.weights.close()


class WeightReader:
    """An actor's side of `SharedWeights` (what `SlotSender` pulls from).

    Args:
      weights: the learner's `SharedWeights`.
      timeout_s: how long `pull_weights` waits for the first publication
        (None: as long as it takes; the learner publishes before it starts
        its actors, and an actor exits when its learner does).
    """

    def __init__(self, weights, timeout_s=None):
        self._weights, self._timeout_s = weights, timeout_s

    def pull_weights(self):
        """(list of np.ndarray, int version), waiting for the first
        publication; raises `tf.errors.CancelledError` once the learner is
        done, `tf.errors.DeadlineExceededError` after `timeout_s` with
        nothing published."""
        wait = POLL_MIN_S
        deadline = (None if self._timeout_s is None
                    else time.monotonic() + self._timeout_s)
        while True:
            if self._weights.closed:
                raise tf.errors.CancelledError(None, None,
                                               "the learner is done")
            pulled = self._weights.read()
            if pulled is not None:
                return pulled
            if deadline is not None and time.monotonic() >= deadline:
                raise tf.errors.DeadlineExceededError(
                    None, None, "the learner published no weights within "
                    f"{self._timeout_s:g} s")
            time.sleep(wait)
            wait = min(POLL_MAX_S * 10, 2 * wait)

    def queue_closed(self):
        """True once the learner is done."""
        return self._weights.closed

    def close(self):
        pass  # Nothing to release; the memory is the learner's.
