"""Tests of impala_tf.transport.grpc against a real learner server: weights
round-trip with their version and a batch crosses as tensors of the nest;
and `ActorClient.enqueue`: a blocked enqueue that outlasts its deadline (the learner not
dequeuing: first compile, a checkpoint, a PBT copy) delivers every
trajectory exactly once, and a blocked enqueue still ends when the learner
closes its queue or vanishes (and what it abandons puts nothing into the
queue of a learner restarted at that address).

Each scenario is a script run in a private network namespace
(`testing.run_isolated_script`); the deadline is injected (200 ms) instead
of `grpc.ENQUEUE_TIMEOUT_MS`. Waits are events and joins with timeouts.
"""

import pytest

from impala_tf import testing
from tests import procs

_ONCE_SCRIPT = r"""
import threading
import numpy as np
import tensorflow as tf
from impala_tf.transport import grpc
from impala_tf.transport import reconnecting
from tests import transport_data as t

CAPACITY, N, CALLS, ACTORS, DEADLINE_MS = 2, 5, 3, 2, 200
address = f"localhost:{grpc.pick_free_port()}"
grpc.start_learner_server(address)
server = grpc.LearnerServer(t.SPEC, [], capacity=CAPACITY)
server.publish([], 0)

waited = [threading.Event() for _ in range(ACTORS)]
results, lines = [None] * ACTORS, []


def connect(a):
    client = grpc.ActorClient(address, t.SPEC, [], CAPACITY,
                              connect_timeout_s=30,
                              enqueue_timeout_ms=DEADLINE_MS, actor_id=a)
    check, count = client.queue_closed, [0]

    def counted():  # Called each time a blocked enqueue's deadline passes.
        count[0] += 1
        if count[0] >= 2:
            waited[a].set()
        return check()

    client.queue_closed = counted
    return reconnecting.ReconnectingClient(
        lambda: client, address, f"actor {a}", log=lines.append)


def ks(a, call):
    return 1000 * a + call * N + np.arange(N)


def act(a, client):
    try:
        for call in range(CALLS):  # N > CAPACITY trajectories per enqueue.
            client.enqueue(t.trajectories(ks(a, call)))
        results[a] = "ok"
    except Exception as e:  # pylint: disable=broad-except
        results[a] = repr(e)


clients = [connect(a) for a in range(ACTORS)]
actors = [threading.Thread(target=act, args=(a, c), daemon=True)
          for a, c in enumerate(clients)]
for thread in actors:
    thread.start()
# The learner takes nothing until every actor's enqueue has been blocked for
# two deadlines.
for a, event in enumerate(waited):
    assert event.wait(60), f"actor {a}'s enqueue never outlasted a deadline"
got = []
batches = server.batches(1, prefetch=1)


def drain():
    for batch in batches:
        got.append(int(batch["k"][0]))


drainer = threading.Thread(target=drain, daemon=True)
drainer.start()
for thread in actors:
    thread.join(60)
    assert not thread.is_alive(), "an enqueue never returned"
batches.close()  # What is left in the queue is still read, then the end.
drainer.join(60)
assert not drainer.is_alive(), "the learner's reads never ended"
assert results == ["ok"] * ACTORS, results
assert not lines[ACTORS:], lines  # Connected once each, never lost.
expected = sorted(int(k) for a in range(ACTORS) for call in range(CALLS)
                  for k in ks(a, call))
twice = sorted({k for k in got if got.count(k) > 1})
missing = sorted(set(expected) - set(got))
print(f"received {len(got)} of {len(expected)}; twice {twice}; "
      f"missing {missing}")
assert sorted(got) == expected
for a in range(ACTORS):  # And in each actor's order.
    mine = [k for k in got if k // 1000 == a]
    assert mine == sorted(mine), mine
for client in clients:
    client.close()
print("ONCE-OK")
"""


@procs.requires_netns
def test_enqueue_blocked_past_its_deadline_delivers_each_trajectory_once():
    """Two remote actors (`ReconnectingClient`s) send 5 trajectories per
    enqueue into a queue of 2; the learner takes nothing until each actor's
    enqueue has outlasted its deadline twice, then takes everything: every
    (actor, sequence) arrives exactly once, in each actor's order."""
    code, out = testing.run_isolated_script(
        '"$PY" -c "$SCRIPT"', timeout=180, env={"SCRIPT": _ONCE_SCRIPT})
    assert code == 0 and "ONCE-OK" in out, out[-3000:]


_LEARNER = r"""
import sys
from impala_tf.transport import grpc
from tests import transport_data as t

grpc.start_learner_server(sys.argv[1])
server = grpc.LearnerServer(t.SPEC, [], capacity=1)
server.publish([], 0)
print("serving", flush=True)
for line in sys.stdin:  # "close" or "size"; the end of input: exit.
    if line == "close\n":
        server.close()
        print("closed", flush=True)
    else:
        print(int(server._queue.size()), flush=True)
"""

_ENDS_SCRIPT = r"""
import subprocess
import sys
import threading
import tensorflow as tf
from impala_tf.transport import grpc
from impala_tf.transport import reconnecting
from tests import transport_data as t
from tests import test_grpc as g

DEADLINE_MS = 200


def learner(address=None):
    address = address or f"localhost:{grpc.pick_free_port()}"
    proc = subprocess.Popen([sys.executable, "-c", g._LEARNER, address],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            text=True)
    assert proc.stdout.readline() == "serving\n"
    return address, proc


def blocked_enqueue(address):
    client = grpc.ActorClient(address, t.SPEC, [], 1, connect_timeout_s=30,
                              enqueue_timeout_ms=DEADLINE_MS)
    check, checked, ended = client.queue_closed, threading.Event(), []

    def counted():
        checked.set()
        return check()

    def send():
        try:
            client.enqueue(t.trajectories([1, 2, 3]))  # The queue holds 1.
            ended.append("sent")
        except tf.errors.OpError as e:
            ended.append(type(e).__name__)

    client.queue_closed = counted
    thread = threading.Thread(target=send, daemon=True)
    thread.start()
    assert checked.wait(60), "the enqueue never outlasted its deadline"
    return client, thread, ended


procs = []
try:
    address, proc = learner()
    procs.append(proc)
    client, thread, ended = blocked_enqueue(address)
    proc.stdin.write("close\n")
    proc.stdin.flush()
    assert proc.stdout.readline() == "closed\n"
    thread.join(30)
    assert ended in (["CancelledError"], ["AbortedError"]), ended
    print("closed queue:", ended[0])
    reconnecting.close_quietly(client)

    address, proc = learner()
    procs.append(proc)
    client, thread, ended = blocked_enqueue(address)
    proc.kill()
    proc.wait(30)
    thread.join(60)  # A check every 200 ms, each answered within 5 s.
    assert ended in (["UnavailableError"], ["DeadlineExceededError"]), ended
    print("learner gone:", ended[0])
    reconnecting.close_quietly(client)
    # A learner restarted at that address: the abandoned enqueue's thread
    # ends (its session is unknown there) and puts nothing in the new queue.
    _, proc = learner(address)
    procs.append(proc)
    for helper in threading.enumerate():
        if helper.name == "impala-enqueue":
            helper.join(120)
            assert not helper.is_alive(), "an abandoned enqueue never ended"
    proc.stdin.write("size\n")
    proc.stdin.flush()
    assert proc.stdout.readline() == "0\n"
finally:
    for proc in procs:
        proc.kill()
        proc.wait(30)
print("ENDS-OK")
"""


@pytest.mark.slow  # Three learner processes and gRPC's reconnection backoff.
@procs.requires_netns
def test_blocked_enqueue_ends_when_the_learner_closes_or_vanishes():
    """An enqueue blocked on a full queue for longer than its deadline
    raises CancelledError/AbortedError once the learner closes its queue,
    and UnavailableError/DeadlineExceededError once the learner process is
    killed (it checks the learner every deadline); the enqueue it abandons
    ends once a learner is back at the address, which it leaves empty."""
    code, out = testing.run_isolated_script(
        '"$PY" -c "$SCRIPT"', timeout=180, env={"SCRIPT": _ENDS_SCRIPT})
    assert code == 0 and "ENDS-OK" in out, out[-3000:]


_GRPC_SCRIPT = r"""
import numpy as np
import tensorflow as tf
from impala_tf import transport
from impala_tf.transport import grpc
from tests import transport_data as t

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
client.enqueue(t.trajectories([1, 2, 3]))
client.enqueue(t.trajectories([4, 5, 6]))
batches = server.batches(4, prefetch=1)
assert isinstance(batches, transport.BatchSource)
batch = next(batches)
assert all(isinstance(x, tf.Tensor) for x in tf.nest.flatten(batch))
assert batch["frame"].shape == (4, 3, 5, 5, 4)
assert batch["frame"].dtype == tf.uint8
assert t.check_batch([batch[k].numpy() for k in sorted(t.SPEC)], 4) == [
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
