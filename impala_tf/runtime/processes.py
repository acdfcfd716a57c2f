"""Child processes: a free port, ending with the parent, and stopping them.

The one place where the project's tools and runtime handle the processes
they start:

* `free_port()`: a local TCP port nothing is bound to at the time of the
  call, for a server about to start.
* `die_with_parent()`: in a child about to exec (Popen's `preexec_fn`), ask
  Linux to send it SIGTERM when its parent dies (PR_SET_PDEATHSIG); a no-op
  elsewhere.
* `exit_with_parent(parent_pid)`: in a Python child (a `multiprocessing`
  target), a daemon thread that ends the process once its parent is gone;
  any OS, whichever parent thread started it.
* `stop(procs, timeout_s)`: optionally wait for processes to exit on their
  own, then SIGTERM, wait up to a timeout, SIGKILL (to each process group,
  with `group`), and reap; `kill(procs)`: SIGKILL and reap now;
  `wait(procs, timeout_s)`: a bounded wait. Each takes a
  `subprocess.Popen`, a `multiprocessing.Process` or a list of them.

No TensorFlow and no absl.
"""

import ctypes
import os
import signal
import socket
import subprocess
import sys
import threading
import time

_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def _load_prctl():
    """libc's prctl, looked up in the parent: a `preexec_fn` then runs no
    dynamic loading between fork and exec. None where there is none."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None


_PRCTL = _load_prctl()


def free_port():
    """A TCP port no socket on this machine is bound to now (the kernel's
    pick), as an int. Another process may take it before the caller binds
    it; a server that can bind port 0 itself should do that instead."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("", 0))
        return s.getsockname()[1]


def die_with_parent(parent_pid=None, sig=signal.SIGTERM):
    """In a child: the kernel sends it `sig` when its parent dies.

    For `subprocess.Popen(..., preexec_fn=die_with_parent)` (or
    `functools.partial(die_with_parent, os.getpid())`, which also catches
    a parent that died before the request was made: the child then signals
    itself at once). Linux only (PR_SET_PDEATHSIG); a no-op elsewhere. The
    kernel's "parent" is the thread that started the child, so start it from
    a thread that lives as long as the process (the main thread). The
    setting survives exec. Returns True if it was set.
    """
    if _PRCTL is None or _PRCTL(_PR_SET_PDEATHSIG, int(sig), 0, 0, 0) != 0:
        return False
    if parent_pid is not None and os.getppid() != parent_pid:
        os.kill(os.getpid(), sig)
    return True


def exit_with_parent(parent_pid, poll_s=1.0, exit_code=0):
    """In a Python child: ends this process (`os._exit(exit_code)`) within
    `poll_s` seconds of its parent `parent_pid` going away (the child is
    then re-parented), from a daemon thread; returns the thread. Works on
    every OS and whatever thread of the parent started the child, which
    `die_with_parent` does not."""
    def watch():
        while os.getppid() == parent_pid:
            time.sleep(poll_s)
        os._exit(exit_code)  # pylint: disable=protected-access

    thread = threading.Thread(target=watch, name="exit-with-parent",
                              daemon=True)
    thread.start()
    return thread


def _as_list(procs):
    if isinstance(procs, (list, tuple)):
        return list(procs)
    return [procs]


def _running(proc):
    """True while `proc` (Popen or multiprocessing.Process) runs; reaps it
    once it has exited."""
    if isinstance(proc, subprocess.Popen):
        return proc.poll() is None
    return proc.is_alive()


def _exit_code(proc):
    """Its exit status (negative: the signal that ended it), None while it
    runs."""
    if isinstance(proc, subprocess.Popen):
        return proc.returncode
    return proc.exitcode


def _wait(proc, timeout_s):
    """Waits up to `timeout_s` (None: for ever) for `proc` to exit."""
    if proc.pid is None:  # A multiprocessing.Process never started.
        return
    if isinstance(proc, subprocess.Popen):
        try:
            proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            pass
    else:
        proc.join(timeout_s)


def _signal(proc, sig):
    """`sig` to `proc` if it still runs (a reaped pid may be reused)."""
    if _running(proc):
        try:
            os.kill(proc.pid, sig)
        except ProcessLookupError:
            pass


def _signal_group(proc, sig):
    """`sig` to the process group `proc` leads, whatever is left of it."""
    if proc.pid is None:
        return
    try:
        os.killpg(proc.pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def wait(procs, timeout_s):
    """Waits up to `timeout_s` seconds in all for `procs` to exit (and reaps
    those that did); returns those still running, in order."""
    procs = _as_list(procs)
    deadline = time.monotonic() + timeout_s
    for proc in procs:
        if _running(proc):
            _wait(proc, max(0.0, deadline - time.monotonic()))
    return [p for p in procs if _running(p)]


def kill(procs, group=False):
    """SIGKILLs each process of `procs` that still runs and reaps it.

    group: each process leads its own process group (Popen's
    `start_new_session=True`); the SIGKILL goes to the whole group,
    whether or not its leader still runs (children that outlived it).
    Returns their exit statuses, in order (negative: the signal).
    """
    procs = _as_list(procs)
    for proc in procs:
        if group:
            _signal_group(proc, signal.SIGKILL)
        else:
            _signal(proc, signal.SIGKILL)
    for proc in procs:
        _wait(proc, None)
    return [_exit_code(p) for p in procs]


def stop(procs, timeout_s, group=False, wait_s=0.0, sig=signal.SIGTERM):
    """Ends processes: asks, then forces.

    Waits up to `wait_s` seconds in all for `procs` to exit by themselves
    (asked some other way: a closed pipe, an event), sends `sig` to each
    one still running (never to its group: a trainer stops its own
    children), waits up to `timeout_s` seconds in all, then `kill(procs,
    group)`. Returns their exit statuses, in order (negative: the signal
    that ended one).

    Args:
      procs: a `subprocess.Popen`, a `multiprocessing.Process` or a list of
        them (their own processes, started by this one).
      timeout_s: seconds between `sig` and SIGKILL.
      group: see `kill`.
      wait_s: seconds to wait before sending `sig`.
      sig: the polite signal.
    """
    procs = _as_list(procs)
    for proc in wait(procs, wait_s):
        _signal(proc, sig)
    wait(procs, timeout_s)
    return kill(procs, group=group)
