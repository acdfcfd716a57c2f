"""Tests for impala_tf.runtime.supervisor: restarts with back-off, giving up,
environment errors and hangs, and a quick stop of healthy actors.

The actors are real (TensorFlow-free) processes running
`tests.faulty_envs.fake_actor_main`; tests/test_reliability.py runs the whole
trainer with real processes and signals.
"""

import time

import pytest

from impala_tf.runtime import supervisor as supervisor_lib
from impala_tf import testing
from impala_tf.envs import registry
from tests import faulty_envs

TOY = testing.TOY_LEVEL


def _supervisor(behaviour, lines, **kwargs):
    config = faulty_envs.FakeActorConfig(
        behaviour, registry.parse_level_name(TOY))
    return supervisor_lib.ActorSupervisor(
        config, "localhost:1", 1, log=lines.append,
        target=faulty_envs.fake_actor_main, **kwargs)


def _poll_until(sup, condition, timeout_s=30.0):
    deadline = time.monotonic() + timeout_s
    try:
        while not condition():
            assert time.monotonic() < deadline, "timed out"
            sup.poll()
            time.sleep(0.05)
    finally:
        sup.stop(timeout_s=2)


def test_supervisor_restarts_with_backoff_then_gives_up():
    lines = []
    sup = _supervisor("crash", lines, restart_delay_s=0.1,
                      max_consecutive_failures=3)
    sup.start()
    with pytest.raises(supervisor_lib.ActorsFailing,
                       match="actor 0 failed 3 times in a row"):
        _poll_until(sup, lambda: False)
    assert sup.restarts == 2
    assert "exited with status 1; restarting it in 0.1 s" in lines[0]
    assert "restarting it in 0.2 s" in lines[1]
    assert not sup.pids()


def test_supervisor_counts_environment_errors():
    lines = []
    sup = _supervisor("env_error", lines, restart_delay_s=0.05)
    sup.start()
    _poll_until(sup, lambda: sup.restarts >= 2)
    assert sup.stats()["env_errors"] >= 2
    assert "stopped because its environment raised" in lines[0]


def test_supervisor_kills_an_actor_whose_environment_hangs():
    lines = []
    sup = _supervisor("hang", lines, env_timeout_s=0.5, restart_delay_s=0.05)
    sup.start()
    pid = sup.pids()[0]
    _poll_until(sup, lambda: sup.restarts >= 1)
    assert lines[0].startswith(
        f"[impala] actor 0: environment '{TOY}' has not returned from "
        "step() for "), lines
    assert lines[0].endswith("s (--env_timeout_s=0.5); killing the actor")
    assert "was stopped by the environment watchdog" in lines[1]
    assert sup.stats()["env_timeouts"] == 1
    stat = testing.proc_stat(pid)
    assert stat is None or stat.state == "Z"  # Gone, or a zombie.


def test_supervisor_stops_healthy_actors_quickly():
    sup = _supervisor("run", [])
    sup.start()
    try:
        # Until the actor is past its start-up (its heartbeat says running),
        # so stop() asks it to stop rather than killing a starting process.
        deadline = time.monotonic() + 30.0
        while not sup.running(0):
            assert time.monotonic() < deadline, "actor never started running"
            sup.poll()
            time.sleep(0.05)
        sup.poll()
        assert sup.stats()["actors_alive"] == 1 and sup.restarts == 0
    except BaseException:
        sup.stop(timeout_s=2)
        raise
    start = time.monotonic()
    sup.stop()
    assert time.monotonic() - start < 5 and sup.stats()["actors_alive"] == 0
