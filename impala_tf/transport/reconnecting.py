"""A remote actor's transport that outlives a restarted learner.

A remote actor (`--job_name=actor`) keeps its environments and recurrent
state when the learner it sends to vanishes without closing its queue
(killed, restarted): `ReconnectingClient` wraps `grpc.ActorClient`s and, when
a call finds the learner gone, connects again for up to
`connect_timeout_s`. The unroll being sent when the learner vanished is
lost. If the learner does not come back, or closed its queue (it is done),
calls raise `tf.errors.CancelledError`, the actor's normal end.
"""

import threading

import tensorflow as tf

from impala_tf.transport import ActorTransport

# Errors meaning the learner is gone or done (the latter once confirmed by
# `queue_closed`).
_GONE = (tf.errors.UnavailableError, tf.errors.DeadlineExceededError,
         tf.errors.NotFoundError, tf.errors.FailedPreconditionError,
         tf.errors.AbortedError, tf.errors.CancelledError,
         tf.errors.OutOfRangeError)


class ReconnectingClient(ActorTransport):
    """An `ActorTransport` that reconnects to a learner that came back.

    Args:
      connect: callable() -> a connected `grpc.ActorClient` (it raises
        `tf.errors.UnavailableError` after its own connect timeout).
      describe: text naming the learner in log lines (its address, job and
        task).
      name: this actor in log lines ("actor 3").
      log: callable(str).

    The constructor connects once and raises what `connect` raises (the
    first connection must succeed; `InvalidArgumentError` means the actor's
    flags do not match the learner's).
    """

    def __init__(self, connect, describe, name, log=print):
        self._connect, self._describe = connect, describe
        self._name, self._log = name, log
        self._client = connect()
        log(f"[impala] {name} connected to the learner at {describe}")

    def _recover(self, error):
        """After `error` from the learner: raise CancelledError if it is done
        or does not come back; return once connected again."""
        try:
            done = self._client.queue_closed()
        except _GONE:
            done = False
        if done:
            self._log(f"[impala] {self._name}: the learner is done")
            raise tf.errors.CancelledError(None, None,
                                           "the learner is done") from error
        self._log(f"[impala] {self._name}: lost the learner at "
                  f"{self._describe}; reconnecting")
        close_quietly(self._client)
        self._client = None
        try:
            self._client = self._connect()
        except _GONE:
            self._log(f"[impala] {self._name}: the learner at "
                      f"{self._describe} went away and did not come back; "
                      "stopping")
            raise tf.errors.CancelledError(
                None, None, "the learner went away") from error
        self._log(f"[impala] {self._name} reconnected to the learner at "
                  f"{self._describe}")

    def pull_weights(self):
        while True:
            try:
                return self._client.pull_weights()
            except _GONE as e:
                self._recover(e)

    def enqueue(self, trajectories):
        try:
            self._client.enqueue(trajectories)
        except _GONE as e:
            self._recover(e)  # This unroll is lost.

    def close(self):
        close_quietly(self._client)
        self._client = None


def close_quietly(client, timeout_s=5.0):
    """Closes a client whose learner may be gone or restarted.

    Closing a session calls the learner, and TF's gRPC client retries a
    vanished server for ever: close in a daemon thread, wait `timeout_s`.
    """
    if client is None:
        return

    def close():
        try:
            client.close()
        except tf.errors.OpError:
            pass

    thread = threading.Thread(target=close, daemon=True)
    thread.start()
    thread.join(timeout_s)

