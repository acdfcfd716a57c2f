"""How trajectories and weights travel between actors and the learner.

Three small interfaces, written down here; two implementations:

  * `grpc` — the learner's TensorFlow server holds a FIFOQueue of
    trajectories and the published weights; actors (on any machine) are
    graph-mode clients of it. The server has no authentication and listens
    on every interface, so a learner starts it only where it must (remote
    actors, synchronous learners, --local_transport=grpc) and was told it
    may (--listen_on_all_interfaces).
  * `shared_memory` — actor processes spawned on the learner's machine copy
    trajectories into memory shared with the learner (one copy each side)
    and read its weights and its "done" from shared memory too: no server,
    no network port.

Both give the learner the same kind of `BatchSource` (a Python iterator of
`tf.Tensor` batches), so the learner loop has one step function.

Shapes: a *trajectory* is the nest `types.Trajectory` of one unroll, each
leaf [T+1, ...] (`types.trajectory_spec`); an actor puts N of them at once
(each leaf [N, T+1, ...], numpy); a *batch* is B of them (each leaf
[B, T+1, ...], `tf.Tensor`s, no gradient). Weights are the agent's
`trainable_variables`, in their fixed order, as a list of numpy arrays.
"""

import abc


class ActorTransport(abc.ABC):
    """What an actor needs: the latest weights in, trajectories out."""

    @abc.abstractmethod
    def pull_weights(self):
        """Returns (list of np.ndarray, int version): the agent's weights in
        `trainable_variables` order and the learner step that wrote them.

        Raises `tf.errors.CancelledError` once the learner is done (a normal
        end for the actor).
        """

    @abc.abstractmethod
    def enqueue(self, trajectories):
        """Sends N unrolls: the `types.Trajectory` nest of numpy arrays, each
        [N, T+1, ...]. Copies them (the caller reuses its buffers).

        Blocks while the learner's buffer is full (back-pressure). Raises
        `tf.errors.CancelledError` or `AbortedError` once the learner is done.
        """

    @abc.abstractmethod
    def close(self):
        """Releases the connection (never blocks for long)."""


class BatchSource(abc.ABC):
    """What the learner reads: an iterator of batches.

    `next()` returns the `types.Trajectory` nest of `tf.Tensor`s, each
    [B, T+1, ...] (uint8 frames stay uint8); iteration ends (StopIteration,
    or a `tf.errors.OutOfRangeError`/`CancelledError` raised from a blocked
    read) once `close()` was called.
    """

    def __iter__(self):
        return self

    @abc.abstractmethod
    def __next__(self):
        """The next batch (see the class docstring)."""

    @abc.abstractmethod
    def close(self):
        """Ends the source: blocked and later reads end the iteration."""


class WeightPublisher(abc.ABC):
    """Where the learner puts its weights for the actors."""

    @abc.abstractmethod
    def publish(self, variables, version):
        """Copies `variables` (the agent's `trainable_variables`, in order)
        where actors read them, with `version` (int64 scalar: the learner
        step). Usable eagerly or inside a `tf.function`."""
