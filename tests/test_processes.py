"""Tests for impala_tf/runtime/processes.py with real child processes.

Every wait is bounded and waits for an event (a readiness line, the end of a
pipe, a process's exit), never a fixed sleep; every process is reaped or
killed at the end.
"""

import multiprocessing
import os
import selectors
import signal
import socket
import subprocess
import sys
import textwrap
import time

import pytest

from impala_tf import testing
from impala_tf.runtime import processes

READY = "ready"
# A child that prints READY once its signal disposition is set, then waits.
IGNORES_TERM = ("import signal, sys; signal.signal(signal.SIGTERM, "
                "signal.SIG_IGN); print('ready', flush=True); "
                "signal.pause()")
DIES_ON_TERM = "import signal; print('ready', flush=True); signal.pause()"


def _python(code, **kwargs):
    return subprocess.Popen([sys.executable, "-c", code], text=True,
                            stdout=subprocess.PIPE, cwd=testing.REPO,
                            **kwargs)


def _read_until_eof(stream, timeout_s):
    """Everything `stream` gives until its end (every writer gone), or None
    if it has not ended within `timeout_s`."""
    data = []
    deadline = time.monotonic() + timeout_s
    with selectors.DefaultSelector() as sel:
        sel.register(stream, selectors.EVENT_READ)
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or not sel.select(left):
                return None
            chunk = os.read(stream.fileno(), 4096)
            if not chunk:
                return b"".join(data).decode()
            data.append(chunk)


def _ready(proc):
    assert proc.stdout.readline().strip() == READY


def test_free_port_is_an_unbound_port():
    port = processes.free_port()
    assert isinstance(port, int) and 0 < port < 65536
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", port))


def test_stop_ends_a_child_with_sigterm_when_it_obeys():
    proc = _python(DIES_ON_TERM)
    try:
        _ready(proc)
        assert processes.stop(proc, timeout_s=60) == [-signal.SIGTERM]
    finally:
        processes.kill(proc)


def test_a_child_that_ignores_sigterm_is_killed_after_the_timeout():
    proc = _python(IGNORES_TERM)
    try:
        _ready(proc)
        start = time.monotonic()
        assert processes.stop(proc, timeout_s=0.5) == [-signal.SIGKILL]
        elapsed = time.monotonic() - start
        assert 0.5 <= elapsed < 30, elapsed
    finally:
        processes.kill(proc)


def test_wait_s_lets_a_child_exit_by_itself_before_any_signal():
    proc = subprocess.Popen(
        [sys.executable, "-c", "import sys; sys.stdin.read()"],
        stdin=subprocess.PIPE)
    try:
        proc.stdin.close()  # The child's cue: it reads EOF and exits 0.
        assert processes.stop(proc, timeout_s=0, wait_s=60) == [0]
    finally:
        processes.kill(proc)


def test_wait_returns_the_processes_still_running():
    quick = subprocess.Popen([sys.executable, "-c", "pass"])
    slow = _python(DIES_ON_TERM)
    try:
        _ready(slow)
        assert processes.wait(quick, timeout_s=60) == []
        assert quick.returncode == 0  # Reaped.
        start = time.monotonic()
        assert processes.wait([quick, slow], timeout_s=0.2) == [slow]
        assert 0.2 <= time.monotonic() - start < 30
    finally:
        processes.kill([quick, slow])


# A process-group leader that starts a child ignoring SIGTERM, prints the
# child's pid and dies on SIGTERM, leaving the child behind. The child
# prints READY on the same stdout, the test's pipe, which it holds open
# while it lives.
LEADER = textwrap.dedent(f"""
    import os, signal, subprocess, sys
    child = subprocess.Popen([sys.executable, "-c", {IGNORES_TERM!r}])
    print(child.pid, flush=True)
    signal.pause()
""")


def _child_pid_once_ready(stream):
    """Reads the two lines of a parent and its child (in either order):
    the child's pid and the child's READY; returns the pid."""
    lines = sorted(stream.readline().strip() for _ in range(2))
    assert lines[1] == READY, lines
    return int(lines[0])


@pytest.mark.parametrize("group", [True, False])
def test_group_kill_reaches_the_children_that_outlive_their_leader(group):
    leader = _python(LEADER, start_new_session=True)
    try:
        child = _child_pid_once_ready(leader.stdout)
        assert processes.stop(leader, timeout_s=60, group=group) == [
            -signal.SIGTERM]
        ended = _read_until_eof(leader.stdout, 60 if group else 2)
        if group:
            assert ended == "", ended  # Its last writer, the child, exited.
        else:
            assert ended is None  # The child lives on.
            assert testing.proc_stat(child).state != "Z"
    finally:
        processes.kill(leader, group=True)


def _ignore_term_until(event):
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    event.set()
    signal.pause()


def _exit_once(event):
    event.set()


def test_stop_takes_multiprocessing_processes_and_reaps_them():
    ctx = multiprocessing.get_context("spawn")
    events = [ctx.Event() for _ in range(3)]
    procs = [ctx.Process(target=_ignore_term_until, args=(events[0],)),
             ctx.Process(target=_ignore_term_until, args=(events[1],)),
             ctx.Process(target=_exit_once, args=(events[2],))]
    try:
        for p, e in zip(procs, events):
            p.start()
            assert e.wait(120)
        procs[2].join(120)  # Exited by itself: stop only reports it.
        codes = processes.stop(procs, timeout_s=0.5)
        assert codes == [-signal.SIGKILL, -signal.SIGKILL, 0]
        assert not any(p.is_alive() for p in procs)
    finally:
        processes.kill(procs)


def test_kill_and_stop_pass_over_a_process_never_started():
    proc = multiprocessing.get_context("spawn").Process(target=print)
    assert processes.kill(proc) == [None]
    assert processes.stop([proc], timeout_s=0) == [None]


# A parent that starts a child and prints its pid. The child, on the same
# stdout (the test's pipe, held open while it lives), prints READY. `none`:
# the child does nothing about its parent; `die`: it is armed with
# die_with_parent; `exit`: it runs exit_with_parent.
PARENT = textwrap.dedent("""
    import functools, os, subprocess, sys
    from impala_tf.runtime import processes
    mode = sys.argv[1]
    code = "import signal; print('ready', flush=True); signal.pause()"
    if mode == "exit":
        code = ("import os; from impala_tf.runtime import processes; "
                "processes.exit_with_parent(os.getppid(), poll_s=0.05); "
                + code)
    pre = (functools.partial(processes.die_with_parent, os.getpid())
           if mode == "die" else None)
    child = subprocess.Popen([sys.executable, "-c", code], preexec_fn=pre)
    print(child.pid, flush=True)
    child.wait()
""")


@pytest.mark.parametrize("mode", [
    pytest.param("die", marks=pytest.mark.skipif(
        not sys.platform.startswith("linux"),
        reason="PR_SET_PDEATHSIG is Linux's")),
    "exit", "none"])
def test_a_child_ends_when_its_parent_is_killed(mode):
    env = dict(os.environ, PYTHONPATH=testing.REPO)
    parent = subprocess.Popen([sys.executable, "-c", PARENT, mode],
                              stdout=subprocess.PIPE, cwd=testing.REPO,
                              env=env, text=True)
    child = None
    try:
        child = _child_pid_once_ready(parent.stdout)
        parent.kill()
        parent.wait(60)
        ended = _read_until_eof(parent.stdout, 60 if mode != "none" else 2)
        if mode == "none":
            assert ended is None  # The control: it outlives its parent.
        else:
            assert ended == "", ended  # Its last writer, the child, exited.
    finally:
        processes.kill(parent)
        if child is not None and testing.proc_stat(child) is not None:
            os.kill(child, signal.SIGKILL)


def test_die_with_parent_signals_at_once_if_the_parent_is_already_gone():
    code = textwrap.dedent("""
        import os, signal, sys
        from impala_tf.runtime import processes
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(7))
        sys.exit(0 if processes.die_with_parent(os.getppid() + 1) else 3)
    """)
    result = subprocess.run([sys.executable, "-c", code], cwd=testing.REPO,
                            env=dict(os.environ, PYTHONPATH=testing.REPO),
                            timeout=120, check=False)
    if sys.platform.startswith("linux"):
        assert result.returncode == 7  # Armed, and its parent "gone".
    else:
        assert result.returncode == 3  # A no-op elsewhere.
