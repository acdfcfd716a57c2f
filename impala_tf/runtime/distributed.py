"""Several machines: synchronous learners, which learner a remote actor
sends to (`learner_for_actor`; the actor itself is `actor.run_remote_actor`),
the count of remote actors.

Synchronous learners (the paper's Fig. 1 right). K learner processes, each
started with the same `--learner_hosts=h0:p0,...,h{K-1}:p{K-1}` and its own
`--task=k`, form a `tf.distribute.MultiWorkerMirroredStrategy` cluster (job
"worker": the strategy accepts no other name but "chief"). Creating the
strategy starts this process's TF gRPC server, which shares its resource
manager with the eager context, so learner k serves its own trajectory queue
and published weights on `/job:worker/task:k` exactly as a single learner
does on `/job:learner/task:0`. Its actors send to it and read weights from
it. Every step each learner:

  1. dequeues its own batch [B, T+1, ...] and computes the gradients of its
     summed loss (`Learner.compute_gradients`);
  2. sums gradients, loss and stop votes over the K learners in one
     collective all-reduce (ring, over gRPC);
  3. clips and applies the summed gradients with the same Sonnet RMSProp as
     a single learner (`Learner.apply_gradients`), outside any strategy
     scope, on its own copy of the variables.

The IMPALA loss is a sum over the batch, so the summed gradient is the
gradient on the union batch [K*B, ...]: K learners update exactly as one
learner with batch K*B would (tests/test_distributed.py checks it), and each
step counts the frames of the fresh trajectories of all K batches
(K*B*T*repeats without replay). The copies stay identical because they
start identical (`broadcast` copies learner 0's variables, restored from its
checkpoint if any, to all) and every learner applies bitwise the same summed
gradients with the same op. Sonnet's optimizers refuse to run inside a
MultiWorkerMirroredStrategy scope; keeping the update outside it keeps the
single learner's optimizer (RMSProp with the mean square started at 1, like
TF1 and the release) instead of switching to Keras RMSprop (started at 0).

Stopping is agreed: a learner asked to stop (a signal) votes through the
all-reduce and every learner leaves after the same step. If a learner dies,
TF's coordination service notices within seconds and the others' all-reduce
fails with `UnavailableError` (training stops; restart all learners from
learner 0's checkpoint).
"""

import threading
import time

import tensorflow as tf

from impala_tf.algorithm import learner as learner_lib
from impala_tf.transport import grpc

WORKER_JOB = "worker"


def parse_hosts(text):
    """'h0:p0,h1:p1' -> ['h0:p0', 'h1:p1']; ValueError with one sentence."""
    hosts = [h.strip() for h in (text or "").split(",") if h.strip()]
    for h in hosts:
        host, _, port = h.rpartition(":")
        if not host or not port.isdigit() or int(port) == 0:
            raise ValueError(f"learner host '{h}' is not host:port with a "
                             "fixed port")
    if len(set(hosts)) != len(hosts):
        raise ValueError(f"--learner_hosts lists an address twice: {text}")
    return hosts


class LearnerCluster:
    """This process's place among K synchronous learners.

    Must be created before any TensorFlow variable (like
    `transport.grpc.start_learner_server`); blocks until all K learners are up.

    Args:
      hosts: list of K "host:port" (the same list, in the same order, in
        every learner and actor).
      task: this learner's index in `hosts`.
      strategy: for tests, an existing strategy whose replicas stand for the
        learners (e.g. `MirroredStrategy` over logical CPUs); then no server
        is started and `hosts`/`task` only name things.
    """

    def __init__(self, hosts, task, strategy=None):
        if not 0 <= task < len(hosts):
            raise ValueError(f"--task={task} is not an index into the "
                             f"{len(hosts)} learner hosts")
        self.hosts = list(hosts)
        self.task = task
        self.address = hosts[task]
        if strategy is None:
            resolver = tf.distribute.cluster_resolver.SimpleClusterResolver(
                tf.train.ClusterSpec({WORKER_JOB: self.hosts}),
                task_type=WORKER_JOB, task_id=task, rpc_layer="grpc")
            ring = tf.distribute.experimental.CommunicationImplementation.RING
            strategy = tf.distribute.MultiWorkerMirroredStrategy(
                cluster_resolver=resolver,
                communication_options=tf.distribute.experimental
                .CommunicationOptions(implementation=ring))
            self.device = grpc.learner_device(task, WORKER_JOB)
        else:
            self.device = strategy.extended.worker_devices[0]
        self.strategy = strategy
        self.num_learners = strategy.num_replicas_in_sync
        with tf.device(self.device):
            self._stop_vote = tf.Variable(0.0, trainable=False,
                                          name="stop_vote")

    @property
    def job(self):
        return WORKER_JOB

    @property
    def is_chief(self):
        return self.task == 0

    @property
    def stop_requested(self):
        return bool(self._stop_vote.numpy() > 0)

    def request_stop(self):
        """Votes to stop; all learners stop after the next common step."""
        self._stop_vote.assign(1.0)

    def _local(self, value):
        return self.strategy.experimental_local_results(value)[0]

    def _sum(self, values):
        """Sums a list of same-dtype tensors over learners, in replica
        context: one packed collective."""
        ctx = tf.distribute.get_replica_context()
        return ctx.all_reduce(tf.distribute.ReduceOp.SUM, values)

    def broadcast(self, variables):
        """Sets `variables` everywhere to learner 0's values (eager call).

        Every learner must call it with the same variables in the same
        order (e.g. `learner.variables`). Learner 0 contributes its values,
        the others zeros: the sum is exact.
        """
        variables = list(variables)
        by_dtype = {}
        for i, v in enumerate(variables):
            by_dtype.setdefault(v.dtype, []).append(i)
        chief = self.is_chief

        @tf.function
        def run():
            with tf.device(self.device):
                for indices in by_dtype.values():
                    values = [variables[i].read_value() if chief
                              else tf.zeros_like(variables[i])
                              for i in indices]
                    summed = self._local(self.strategy.run(
                        lambda *xs: self._sum(list(xs)), args=tuple(values)))
                    for i, s in zip(indices, summed):
                        variables[i].assign(s)

        if self.num_learners > 1 and variables:
            run()

    def step(self, learner, batch):
        """One synchronous update (call inside a `tf.function`).

        batch: this learner's `types.Trajectory` batch, each [B, T+1, ...]
        (or, with a test strategy, a per-replica value of such batches).
        Returns `Learner.train_step`'s dict plus 'stop_votes' (float32
        scalar: learners that asked to stop; > 0 means stop now).
        """
        stop_vote = self._stop_vote

        def replica(b):
            grads, loss, stats = learner.compute_gradients(b)
            fresh = tf.cast(learner_lib.fresh_trajectories(b), tf.float32)
            summed = self._sum(grads + [loss, stop_vote.read_value(), fresh])
            return summed, stats

        with tf.device(self.device):
            summed, stats = self._local(self.strategy.run(replica,
                                                          args=(batch,)))
            grads, loss, votes = summed[:-3], summed[-3], summed[-2]
            fresh = tf.cast(tf.round(summed[-1]), tf.int64)
            out = learner.apply_gradients(list(grads), loss, stats,
                                          self._local(batch), fresh=fresh)
        out["stop_votes"] = votes
        return out


class ActorCounter:
    """Counts remote actors from the heartbeats in `impala/actors/unrolls`.

    An actor counts as there while its slot grew within `timeout_s`.
    `poll()` (call it every second or so) logs joins and departures;
    `stats()` gives 'actors_connected' and 'actors_seen' for progress logs.

    Args:
      read: callable returning the np.int64 [ACTOR_SLOTS] counts
        (`transport.grpc.LearnerServer.actor_unrolls`).
      timeout_s: silence after which an actor counts as gone.
      log: callable(str).
      clock: callable returning seconds (float) on a monotonic clock; every
        time the counter reads or waits against comes from it.
    """

    def __init__(self, read, timeout_s=60.0, log=print, clock=time.monotonic):
        self._read = read
        self._clock = clock
        self._timeout = timeout_s
        self._log = log
        self._counts = None
        self._last_seen = {}
        self._seen = set()
        self._lock = threading.Lock()
        self.last_change = self._clock()

    def poll(self):
        counts = self._read()
        now = self._clock()
        changed = (range(len(counts)) if self._counts is None
                   else (counts != self._counts).nonzero()[0])
        self._counts = counts
        with self._lock:
            for slot in changed:
                if counts[slot] == 0:
                    continue
                self.last_change = now
                if slot not in self._last_seen:
                    self._seen.add(int(slot))
                    self._last_seen[slot] = now
                    self._log(f"[impala] actor {slot} connected "
                              f"({len(self._last_seen)} sending)")
                self._last_seen[slot] = now
            for slot, seen in list(self._last_seen.items()):
                if now - seen > self._timeout:
                    del self._last_seen[slot]
                    self._log(
                        f"[impala] actor {slot} sent nothing for "
                        f"{self._timeout:.0f}s; counted as gone "
                        f"({len(self._last_seen)} sending)")

    def stats(self):
        with self._lock:
            return {"actors_connected": len(self._last_seen),
                    "actors_seen": len(self._seen)}

    def wait_quiet(self, quiet_s=1.5, max_s=10.0):
        """After the queue closed: waits until no actor pulled for
        `quiet_s` (they saw the close and left), at most `max_s`."""
        deadline = self._clock() + max_s
        self.last_change = self._clock()
        while self._clock() < deadline:
            try:
                self.poll()
            except tf.errors.OpError:
                return
            if self._clock() - self.last_change >= quiet_s:
                return
            time.sleep(0.2)


def learner_for_actor(task, learner_address=None, learner_hosts=None):
    """(address, learner task, job) that actor `task` sends to.

    With K synchronous learners, actor i sends to learner i % K.
    """
    if learner_hosts and len(learner_hosts) > 1:
        k = task % len(learner_hosts)
        return learner_hosts[k], k, WORKER_JOB
    address = learner_hosts[0] if learner_hosts else learner_address
    return address, 0, grpc.LEARNER_JOB
