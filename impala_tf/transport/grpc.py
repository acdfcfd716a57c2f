"""Trajectories and weights over TensorFlow's gRPC runtime (any machine).

The learner process owns a TensorFlow server (started by
`tf.config.experimental_connect_to_cluster`, so its eager context and the
server share one resource manager). On it live:

  * a `FIFOQueue` of trajectories, shared by name (`impala/trajectories`);
  * one resource variable per agent weight (`impala/weights/<i>`) plus
    `impala/weights/version` (the learner step that wrote them);
  * `impala/actors/unrolls`, int64 [ACTOR_SLOTS]: each remote actor adds 1
    at slot `actor_id % ACTOR_SLOTS` whenever it pulls weights (once per
    unroll), so the learner can count the actors that are there.

Actors are *graph-mode* clients (`tf.compat.v1.Session("grpc://learner")`):
they enqueue batches of unrolls and read the published weights by name. A
graph-mode client that exits leaves the queue intact; a remote-eager client
would clear the learner's resources when it exits (../shared/NOTES-tf2.md),
so actors never use remote eager. The public `tf.queue.FIFOQueue` does not
share by name in eager mode, so both sides create the queue with the raw
`FIFOQueueV2` op in an explicit container.

An actor's enqueue of N unrolls is one `enqueue_many`, which TF applies one
unroll at a time as the queue frees space, so a cancelled one leaves part of
the batch in the queue. It therefore has no deadline: it waits in a helper
thread while the actor checks every ENQUEUE_TIMEOUT_MS that the learner still
answers, so a learner that stops dequeuing for a while (first compile, a
checkpoint, a PBT copy) gets every unroll exactly once, and one that is gone
or closed its queue ends the enqueue with an error (the unrolls not yet in
are lost with it).

Nothing here names a host: the learner listens on the address it is given
(TF's server binds every interface whatever the host part says) and actors
connect to whatever address they are given. A single learner's server is
job "learner" task 0; synchronous learners (`distributed.LearnerCluster`)
are tasks of job "worker" (the only job name MultiWorkerMirroredStrategy
accepts besides "chief"), each with its own queue and weights.

Implements the package's interfaces: `LearnerServer` is the learner's
`WeightPublisher` and makes its `BatchSource` (`batches`); `ActorClient` is
an actor's `ActorTransport`, and `ReconnectingClient` one that outlives a
restarted learner (remote actors).
"""

import socket
import threading
import time

import tensorflow as tf

from impala_tf.runtime import processes
from impala_tf.transport import ActorTransport
from impala_tf.transport import BatchSource
from impala_tf.transport import WeightPublisher

CONTAINER = "impala"
QUEUE_NAME = "impala/trajectories"
WEIGHT_PREFIX = "impala/weights/"
VERSION_NAME = WEIGHT_PREFIX + "version"
ACTORS_NAME = "impala/actors/unrolls"
ACTOR_SLOTS = 4096
PULL_TIMEOUT_MS = 20_000  # A weight pull takes milliseconds.
ENQUEUE_TIMEOUT_MS = 20_000  # A blocked enqueue checks the learner this often.
LEARNER_JOB = "learner"


def flat_specs(structure_spec):
    """Flattens a nest of `tf.TensorSpec` into (dtypes, shapes) lists."""
    flat = tf.nest.flatten(structure_spec)
    return [s.dtype for s in flat], [s.shape for s in flat]


def _queue(dtypes, shapes, capacity):
    handle = tf.raw_ops.FIFOQueueV2(
        component_types=dtypes, shapes=shapes, capacity=capacity,
        shared_name=QUEUE_NAME, container=CONTAINER)
    return tf.queue.QueueBase(dtypes, shapes, None, handle)


def _variable_handle(name, dtype, shape):
    return tf.raw_ops.VarHandleOp(
        dtype=dtype, shape=shape, shared_name=name, container=CONTAINER)


def learner_device(task=0, job=LEARNER_JOB):
    return f"/job:{job}/replica:0/task:{task}/device:CPU:0"


def start_learner_server(address, cluster=None, task=0):
    """Starts this process's TF server and makes eager ops run on it.

    Must run before any TensorFlow variable is created in the process
    (variables created earlier live on `/job:localhost` and become
    unreachable). TF's server listens on every interface whatever the host
    part of `address` says.

    Args:
      address: "host:port" to serve on (the port must be fixed: actors must
        know it; see `pick_free_port`).
      cluster: optional `tf.train.ClusterSpec` (several learners); by default
        a one-task `learner` job at `address`.
      task: this learner's task index in the cluster.
    """
    if cluster is None:
        cluster = tf.train.ClusterSpec({LEARNER_JOB: [address]})
    tf.config.experimental_connect_to_cluster(
        cluster, job_name=LEARNER_JOB, task_index=task)


class LearnerServer(WeightPublisher):
    """The learner's side: serves the queue and publishes weights.

    `start_learner_server` must have been called first. The weights are not
    readable until the first `publish` (actors wait for it).

    Args:
      trajectory_spec: nest of `tf.TensorSpec` for ONE trajectory (no batch).
      variable_specs: list of (dtype, shape) of the agent's trainable
        variables, in their fixed order (`policy.variable_specs`).
      capacity: queue capacity, in trajectories.
      task: this learner's task index in the cluster.
      job: this learner's job name in the cluster.
    """

    def __init__(self, trajectory_spec, variable_specs, capacity, task=0,
                 job=LEARNER_JOB):
        self._device = learner_device(task, job)
        self._spec = trajectory_spec
        dtypes, shapes = flat_specs(trajectory_spec)
        with tf.device(self._device):
            self._queue = _queue(dtypes, shapes, capacity)
            self._published = [
                _variable_handle(WEIGHT_PREFIX + str(i), dtype, shape)
                for i, (dtype, shape) in enumerate(variable_specs)]
            self._version = _variable_handle(VERSION_NAME, tf.int64, [])
            self._actors = _variable_handle(ACTORS_NAME, tf.int64,
                                            [ACTOR_SLOTS])
            tf.raw_ops.AssignVariableOp(
                resource=self._actors,
                value=tf.zeros([ACTOR_SLOTS], tf.int64))

    def publish(self, variables, version):
        """Copies `variables` (same order as at construction) for actors.

        Usable eagerly or inside a `tf.function`. `version` is an int64 scalar
        (the learner step).
        """
        for handle, v in zip(self._published, variables):
            tf.raw_ops.AssignVariableOp(resource=handle, value=v.read_value())
        tf.raw_ops.AssignVariableOp(
            resource=self._version, value=tf.cast(version, tf.int64))

    def batches(self, batch_size, prefetch=1):
        """A `BatchSource` of batches from the queue, each leaf
        [batch_size, T+1, ...] (`tf.data` dequeues `prefetch` ahead).

        It ends once the queue is closed (`close()` here or on the source)
        and holds fewer than `batch_size` trajectories.
        """
        return _QueueBatches(self._queue, self._spec, self.close, batch_size,
                             prefetch)

    def actor_unrolls(self):
        """np.int64 [ACTOR_SLOTS]: weight pulls so far, per actor slot."""
        with tf.device(self._device):
            return tf.raw_ops.ReadVariableOp(
                resource=self._actors, dtype=tf.int64).numpy()

    def close(self):
        """Closes the queue, cancelling blocked enqueues of actors."""
        try:
            self._queue.close(cancel_pending_enqueues=True)
        except tf.errors.OpError:
            pass


class _QueueBatches(BatchSource):
    """`LearnerServer.batches`: a `tf.data` pipeline over `dequeue_many`;
    `close_queue` closes the server's queue."""

    def __init__(self, queue, spec, close_queue, batch_size, prefetch):
        self._close_queue = close_queue
        self._closed = threading.Event()

        def dequeue(_):
            flat = queue.dequeue_many(batch_size)
            return tf.nest.pack_sequence_as(spec, flat)

        dataset = tf.data.Dataset.from_tensors(0).repeat().map(dequeue)
        self._iterator = iter(dataset.prefetch(prefetch))

    def __next__(self):
        try:
            return next(self._iterator)
        except tf.errors.OpError:
            # Closing the queue under a waiting dequeue surfaces through
            # tf.data as InvalidArgumentError ("... produced
            # OutOfRangeError"): the end of the source, not a failure.
            if self._closed.is_set():
                raise StopIteration from None
            raise

    def close(self):
        self._closed.set()
        self._close_queue()


class ActorClient(ActorTransport):
    """An actor's side: a graph-mode gRPC client of the learner's server.

    Args:
      learner_address: "host:port" of the learner.
      trajectory_spec: the same nest of `tf.TensorSpec` as the learner's.
      variable_specs: list of (dtype, shape) of the agent's weights, in the
        learner's order.
      capacity: must equal the learner's queue capacity (TF checks it).
      connect_timeout_s: how long to retry while the learner is not up.
      task: the learner task to talk to.
      job: that learner's job name ("learner", or "worker" for synchronous
        learners).
      actor_id: if not None, every `pull_weights` also adds 1 to the
        learner's `impala/actors/unrolls[actor_id % ACTOR_SLOTS]` (the
        learner's count of remote actors).
      enqueue_timeout_ms: how often an enqueue blocked on a full queue
        checks that the learner is still there (`enqueue`).
    """

    def __init__(self, learner_address, trajectory_spec, variable_specs,
                 capacity, connect_timeout_s=120.0, task=0,
                 job=LEARNER_JOB, actor_id=None,
                 enqueue_timeout_ms=ENQUEUE_TIMEOUT_MS):
        self._spec = trajectory_spec
        self._enqueue_timeout_s = enqueue_timeout_ms / 1000
        self._graph = tf.Graph()
        dtypes, shapes = flat_specs(trajectory_spec)
        with self._graph.as_default(), tf.device(learner_device(task, job)):
            queue = _queue(dtypes, shapes, capacity)
            self._placeholders = [
                tf.compat.v1.placeholder(d, [None] + s.as_list())
                for d, s in zip(dtypes, shapes)]
            self._enqueue = queue.enqueue_many(self._placeholders)
            self._queue_closed = queue.is_closed()
            reads = [tf.raw_ops.ReadVariableOp(
                resource=_variable_handle(WEIGHT_PREFIX + str(i), d, s),
                dtype=d) for i, (d, s) in enumerate(variable_specs)]
            version = tf.raw_ops.ReadVariableOp(
                resource=_variable_handle(VERSION_NAME, tf.int64, []),
                dtype=tf.int64)
            self._pull = (reads, version)
            self._pull_extra = [self._queue_closed]
            if actor_id is not None:
                self._pull_extra.append(tf.raw_ops.ResourceScatterAdd(
                    resource=_variable_handle(ACTORS_NAME, tf.int64,
                                              [ACTOR_SLOTS]),
                    indices=tf.constant([actor_id % ACTOR_SLOTS], tf.int64),
                    updates=tf.constant([1], tf.int64)))
        self._pull_options = tf.compat.v1.RunOptions(
            timeout_in_ms=PULL_TIMEOUT_MS)
        config = tf.compat.v1.ConfigProto(
            intra_op_parallelism_threads=1, inter_op_parallelism_threads=1)
        # Only this learner's task: never wait for the other tasks of a
        # multi-learner cluster when creating the session.
        config.device_filters.append(f"/job:{job}/task:{task}")
        deadline = time.monotonic() + connect_timeout_s
        # A session to a port nobody serves blocks in its first run without
        # a timeout (gRPC waits for the server): wait for the port first.
        _wait_for_port(learner_address, deadline)
        self._session = tf.compat.v1.Session(
            "grpc://" + learner_address, graph=self._graph, config=config)
        self._wait_for_learner(max(0.0, deadline - time.monotonic()))

    def _wait_for_learner(self, timeout_s):
        """Retries reading the weights until the learner serves them."""
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                self._session.run(
                    self._pull[1],
                    options=tf.compat.v1.RunOptions(timeout_in_ms=5000))
                return
            except (tf.errors.UnavailableError, tf.errors.NotFoundError,
                    tf.errors.FailedPreconditionError,
                    tf.errors.DeadlineExceededError):
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)

    def pull_weights(self):
        """Returns (list of np.ndarray weights, int version).

        Raises `tf.errors.CancelledError` once the learner closed its queue
        (it is done), so an actor stops before acting another unroll, and
        `tf.errors.DeadlineExceededError` if the learner does not answer in
        PULL_TIMEOUT_MS (gRPC would otherwise wait for a dead one forever).
        """
        (weights, version), extra = self._session.run(
            (self._pull, self._pull_extra), options=self._pull_options)
        if extra[0]:
            raise tf.errors.CancelledError(
                None, None, "the learner closed its trajectory queue")
        return weights, int(version)

    def enqueue(self, trajectories):
        """Enqueues a batch of N unrolls: the trajectory nest, each [N, ...].

        Blocks while the queue is full (the only back-pressure on actors).
        Raises `tf.errors.CancelledError` or `tf.errors.AbortedError` once
        the learner closed the queue, `tf.errors.DeadlineExceededError` or
        `tf.errors.UnavailableError` if the learner is gone.

        The enqueue itself has no deadline: TF's `enqueue_many` puts the
        unrolls in one at a time as space frees, so cancelling it part way
        would leave some in the queue and a retry would send them twice.
        It runs in a helper thread while this one checks, every
        `enqueue_timeout_ms`, that the learner still answers (TF's gRPC
        client retries a vanished server for ever); if it does not, the
        enqueue is abandoned and its error raised. (An abandoned enqueue's
        thread ends when a learner answers at the address again: the new
        one does not know its session, so nothing of it is enqueued.)
        """
        feed = dict(zip(self._placeholders, tf.nest.flatten(trajectories)))
        call = _Call(lambda: self._session.run(self._enqueue, feed))
        while not call.wait(self._enqueue_timeout_s):
            # Raises if the learner is gone: the caller may then reuse its
            # buffers, which the abandoned run copied into its request at
            # its start.
            if self.queue_closed():  # The close cancels the enqueue too.
                raise tf.errors.CancelledError(
                    None, None, "the learner closed its queue")
        call.result()

    def queue_closed(self):
        """True once the learner closed its queue (it is done)."""
        return bool(self._session.run(
            self._queue_closed,
            options=tf.compat.v1.RunOptions(timeout_in_ms=5000)))

    def close(self):
        self._session.close()


class _Call:
    """Runs fn() once in a daemon thread (one that may never return)."""

    def __init__(self, fn):
        self._fn, self._done = fn, threading.Event()
        self._value = self._error = None
        threading.Thread(target=self._run, daemon=True,
                         name="impala-enqueue").start()

    def _run(self):
        try:
            self._value = self._fn()
        except BaseException as e:  # pylint: disable=broad-except
            self._error = e
        finally:
            self._done.set()

    def wait(self, timeout_s):
        """True once fn returned or raised (waits up to `timeout_s`)."""
        return self._done.wait(timeout_s)

    def result(self):
        """fn's value, or raises its error (after `wait` returned True)."""
        if self._error is not None:
            raise self._error
        return self._value


def _wait_for_port(address, deadline):
    """Waits until `address` ("host:port") accepts TCP connections.

    Raises `tf.errors.UnavailableError` at `deadline` (time.monotonic()).
    """
    host, _, port = address.rpartition(":")
    while True:
        try:
            with socket.create_connection((host.strip("[]"), int(port)),
                                          timeout=2.0):
                return
        except OSError as e:
            if time.monotonic() >= deadline:
                raise tf.errors.UnavailableError(
                    None, None, f"nothing serves {address} ({e})") from None
            time.sleep(0.5)


def pick_free_port():
    """An unused TCP port on this machine (for a learner with no --port):
    `processes.free_port`."""
    return processes.free_port()
