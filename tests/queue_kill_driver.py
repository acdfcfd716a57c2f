"""Driver of test_reliability's SIGKILL-mid-enqueue test (run in a netns).

Serves a trajectory queue in this process, starts two actor processes that
enqueue 4 MB batches of known content (`--actor`), SIGKILLs an actor six
times at random moments (counting the kills that landed inside an enqueue),
checks every trajectory it dequeued, and prints one JSON line of counts.
Run as `python -m tests.queue_kill_driver` from the repository root.
"""

import json
import random
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import tensorflow as tf

from impala_tf.transport import grpc

N = 1 << 18  # Floats per trajectory: 1 MB; an enqueue carries 4.
SPEC = {"k": tf.TensorSpec([], tf.int64), "x": tf.TensorSpec([N], tf.float32)}
CAPACITY = 16
KILLS = 6


def expected(k):
    return (k + np.arange(N)).astype(np.float32)


def actor(address, first_k):
    client = grpc.ActorClient(address, SPEC, [], CAPACITY)
    k = first_k
    while True:
        ks = np.arange(k, k + 4)
        print("begin", flush=True)
        client.enqueue({"k": ks, "x": np.stack([expected(i) for i in ks])})
        print("end", flush=True)
        k += 4


def main():
    address = f"localhost:{grpc.pick_free_port()}"
    grpc.start_learner_server(address)
    server = grpc.LearnerServer(SPEC, [], capacity=CAPACITY)
    server.publish([], 0)  # Actors wait for the first publication.
    batches = server.batches(1)
    last = {}

    def spawn(i):
        p = subprocess.Popen(
            [sys.executable, "-m", "tests.queue_kill_driver", "--actor",
             address, str(i * 100000)], stdout=subprocess.PIPE, text=True)

        def read():
            for line in p.stdout:
                last[p.pid] = line.strip()
        threading.Thread(target=read, daemon=True).start()
        return p

    received, bad = [], []

    def drain():
        for batch in batches:
            k, x = int(batch["k"][0]), batch["x"][0].numpy()
            received.append(k)
            if not np.array_equal(x, expected(k)):
                bad.append(k)

    drainer = threading.Thread(target=drain, daemon=True)
    drainer.start()
    actors, mid, kills, seed = [spawn(0), spawn(1)], 0, 0, 2
    rng = random.Random(0)
    deadline = time.monotonic() + 90
    while kills < KILLS and time.monotonic() < deadline:
        time.sleep(rng.uniform(0.05, 0.3))
        for i, p in enumerate(actors):
            if last.get(p.pid) in ("begin", "end"):  # Connected, sending.
                mid += last.get(p.pid) == "begin"
                p.send_signal(signal.SIGKILL)
                p.wait()
                kills += 1
                actors[i] = spawn(seed)
                seed += 1
                break
    for p in actors:
        p.kill()
        p.wait()
    time.sleep(1)
    batches.close()
    drainer.join(30)
    print(json.dumps(dict(kills=kills, mid=mid, received=len(received),
                          bad=len(bad))))


if __name__ == "__main__":
    if sys.argv[1:2] == ["--actor"]:
        actor(sys.argv[2], int(sys.argv[3]))
    else:
        main()
