"""envs.dmlab_process: the Lab's child process driven over its Pipe, with
tests/fake_deepmind_lab.py as the Lab."""

import pickle

import numpy as np
import pytest

from impala_tf.envs import dmlab_process

FAKE = "tests.fake_deepmind_lab"
LEVEL = "contributed/dmlab30/rooms_watermaze"
CONFIG = {"width": "96", "height": "72"}


@pytest.fixture
def child():
    """start(module, config) -> (process, conn); each stopped afterwards."""
    started = []

    def start(module=FAKE, config=CONFIG):
        process, conn = dmlab_process.start_child(
            module, LEVEL, config, "software", None, 4)
        started.append((process, conn))
        return process, conn

    yield start
    for process, conn in started:
        dmlab_process.shutdown_child(process, conn, timeout=5)


def test_child_serves_reset_and_step_and_exits_on_close(child):
    process, conn = child()
    assert dmlab_process.receive(process, conn) == ("ready", process.pid)
    assert dmlab_process.send(conn, ("reset", 1))
    kind, (frame, instruction) = dmlab_process.receive(process, conn)
    assert kind == "ok" and instruction == ""
    assert frame.shape == (72, 96, 3) and frame.dtype == np.uint8
    for action in range(9):
        assert dmlab_process.send(conn, ("step", action))
        kind, (reward, running, observation) = dmlab_process.receive(
            process, conn)
        assert kind == "ok" and isinstance(reward, float) and running
        assert observation[0].shape == (72, 96, 3)
    dmlab_process.shutdown_child(process, conn, timeout=10)
    assert process.exitcode == 0  # Exited on 'close', not terminated.


def test_an_error_in_the_child_reaches_the_parent_with_its_traceback(child):
    process, conn = child()
    dmlab_process.receive(process, conn)
    dmlab_process.send(conn, ("jump", None))
    kind, packed = dmlab_process.receive(process, conn)
    assert kind == "error"
    error = dmlab_process.unpack_exception(packed, LEVEL)
    assert isinstance(error, ValueError)
    assert str(error) == "unknown command 'jump'"
    assert error.__notes__[0].startswith(
        f"Raised in the DeepMind Lab process for level {LEVEL!r}:\n"
        "Traceback")
    dmlab_process.send(conn, ("reset", 2))  # The child still serves.
    assert dmlab_process.receive(process, conn)[0] == "ok"


def test_a_lab_that_cannot_be_built_is_one_error(child):
    process, conn = child(config={"width": 96})  # Lab wants strings.
    kind, packed = dmlab_process.receive(process, conn)
    assert kind == "error"
    assert isinstance(dmlab_process.unpack_exception(packed, LEVEL),
                      TypeError)
    process.join(10)
    assert process.exitcode == 0


def test_a_missing_lab_module_is_an_import_error_reply(child):
    process, conn = child(module="no_such_lab_module_zz")
    kind, message = dmlab_process.receive(process, conn)
    assert kind == "import_error"
    assert message.startswith("ModuleNotFoundError: No module named "
                              "'no_such_lab_module_zz'")


def test_the_child_exits_when_the_parent_closes_its_end(child):
    process, conn = child()
    dmlab_process.receive(process, conn)
    conn.close()
    process.join(10)
    assert process.exitcode == 0


def test_a_killed_child_is_no_reply_and_an_exit_error(child):
    process, conn = child()
    dmlab_process.receive(process, conn)
    process.kill()
    assert dmlab_process.receive(process, conn) is None
    error = dmlab_process.exit_error(process, LEVEL)
    assert str(error) == (f"the DeepMind Lab process for level {LEVEL!r} "
                          "exited unexpectedly (exit code -9)")


def test_an_exception_that_does_not_unpickle_becomes_a_runtime_error():
    error = dmlab_process.unpack_exception(
        (None, "LabError", "engine failed", "Traceback ...\n"), LEVEL)
    assert isinstance(error, RuntimeError)
    assert str(error) == "LabError: engine failed"
    assert "Traceback ...\n" in error.__notes__[0]
    pickled = pickle.dumps(KeyError("x"))
    error = dmlab_process.unpack_exception(
        (pickled, "KeyError", "'x'", "tb"), LEVEL)
    assert isinstance(error, KeyError) and error.args == ("x",)
