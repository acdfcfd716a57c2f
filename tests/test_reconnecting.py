"""Tests for impala_tf.transport.reconnecting: the actor's client
reconnects to a learner that went away, ends when the learner is done, and
stops when it does not come back. A stand-in gRPC client, no server."""

import numpy as np
import pytest
import tensorflow as tf

from impala_tf import transport
from impala_tf.transport import reconnecting


class _Flaky:
    """A gRPC client stand-in: `ok_first` calls succeed, then each raises
    `error` (None: never)."""

    def __init__(self, error=None, closed=False, ok_first=0):
        self.error, self.closed, self.ok = error, closed, ok_first
        self.sent = 0

    def _maybe_fail(self):
        if self.error is not None and self.ok <= 0:
            raise self.error(None, None, "gone")
        self.ok -= 1

    def pull_weights(self):
        self._maybe_fail()
        return [], 3

    def enqueue(self, trajectories):
        self._maybe_fail()
        self.sent += 1

    def queue_closed(self):
        if self.error is tf.errors.UnavailableError:
            raise tf.errors.UnavailableError(None, None, "gone")
        return self.closed

    def close(self):
        pass


def test_reconnecting_client_reconnects_then_ends_when_the_learner_is_done():
    first = _Flaky(tf.errors.UnavailableError)  # Vanishes at once.
    second = _Flaky(tf.errors.CancelledError, closed=True, ok_first=2)
    clients, lines = [first, second], []
    client = reconnecting.ReconnectingClient(
        lambda: clients.pop(0), "learner:1", "actor 0", log=lines.append)
    assert isinstance(client, transport.ActorTransport)
    assert client.pull_weights() == ([], 3)  # After one reconnection.
    assert any("lost the learner" in line for line in lines)
    assert "reconnected" in lines[-1]
    client.enqueue({"k": np.zeros(2)})
    assert second.sent == 1
    # Then the learner closes its queue: a normal end.
    with pytest.raises(tf.errors.CancelledError):
        client.pull_weights()
    assert "the learner is done" in lines[-1]


def test_reconnecting_client_stops_if_the_learner_does_not_come_back():
    def connect():
        if attempts:
            raise tf.errors.UnavailableError(None, None, "nobody there")
        attempts.append(1)
        return _Flaky(tf.errors.UnavailableError)

    attempts, lines = [], []
    client = reconnecting.ReconnectingClient(connect, "learner:1", "actor 0",
                                             log=lines.append)
    with pytest.raises(tf.errors.CancelledError):
        client.enqueue({"k": np.zeros(2)})
    assert "did not come back" in lines[-1]
