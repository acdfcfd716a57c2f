"""Run impala_tf commands as real processes inside a private network namespace.

TF's gRPC server listens on every interface whatever address it is given,
so every test that starts a learner runs it under `unshare -n` with only
the loopback interface up. Each command gets its own process group, which is
killed (with everything it started) when the command ends or times out.
"""

import os
import shutil
import signal
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def can_isolate():
    if shutil.which("unshare") is None or shutil.which("ip") is None:
        return False
    probe = subprocess.run(
        ["unshare", "-n", "true"], stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL)
    return probe.returncode == 0


requires_netns = pytest.mark.skipif(
    not can_isolate(),
    reason="needs `unshare -n` (root or user namespaces) to keep TF servers "
           "off the network")


def _kill_group(proc):
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def isolated_command(args):
    """The shell command running `args` in a fresh network namespace."""
    quoted = " ".join(subprocess.list2cmdline([a]) for a in args)
    return ["unshare", "-n", "bash", "-c", f"ip link set lo up && exec {quoted}"]


def run_impala(flags, timeout=240, env=None, module="impala_tf.experiment",
               isolate=True):
    """Runs `python -m module flags...`; returns CompletedProcess (text)."""
    args = [sys.executable, "-m", module] + list(flags)
    cmd = isolated_command(args) if isolate else args
    full_env = dict(os.environ, PYTHONUNBUFFERED="1")
    full_env.update(env or {})
    proc = subprocess.Popen(cmd, cwd=REPO, env=full_env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        _kill_group(proc)
        out, err = proc.communicate()
        raise AssertionError(
            f"command timed out after {timeout}s: {' '.join(args)}\n"
            f"stdout:\n{out[-3000:]}\nstderr:\n{err[-3000:]}")
    finally:
        _kill_group(proc)
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err)


def run_isolated_script(script, timeout, cwd=REPO, env=None):
    """Runs a bash script (`set -u`; `$PY` is this Python) in a fresh network
    namespace, stdout and stderr together; returns (returncode, output).
    Everything it started is killed when it ends or times out."""
    cmd = ["unshare", "-n", "bash", "-c",
           "ip link set lo up && set -u\n" + script]
    full_env = dict(os.environ, PYTHONUNBUFFERED="1", PY=sys.executable)
    full_env.update(env or {})
    proc = subprocess.Popen(cmd, cwd=cwd, env=full_env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            start_new_session=True)
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        _kill_group(proc)
        out, _ = proc.communicate()
        raise AssertionError(f"scenario timed out after {timeout}s:\n"
                             + out[-4000:])
    finally:
        _kill_group(proc)  # Anything left behind.
    return proc.returncode, out
