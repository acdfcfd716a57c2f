"""Tests for impala_tf.testing, the helpers of the tests and benchmarks."""

import os
import shlex
import subprocess
import sys
import time

import pytest

from impala_tf import testing
from tests import procs


def test_isolated_argv_brings_loopback_up_then_runs_the_command():
    argv = testing.isolated_command(["python", "-c", "print('a b')"])
    assert argv[:4] == ["unshare", "-n", "bash", "-c"]
    prefix = "ip link set lo up && exec "
    assert argv[4].startswith(prefix)
    assert shlex.split(argv[4][len(prefix):]) == ["python", "-c",
                                                  "print('a b')"]
    assert testing.isolated("true", mount=True)[:3] == ["unshare", "-m", "-n"]


@procs.requires_netns
def test_isolated_script_sees_only_loopback_and_gets_its_python():
    rc, out = testing.run_isolated_script(
        "ip -o link | cut -d: -f2; $PY -c 'print(40 + 2)'", timeout=60)
    assert rc == 0, out
    assert out.split() == ["lo", "42"]


def test_run_impala_returns_the_output_and_status():
    result = testing.run_impala(["--no-such-flag"], module="json.tool",
                                isolate=False, timeout=60)
    assert result.returncode == 2 and "no-such-flag" in result.stderr


def test_proc_stat_process_tree_group_and_cmdline():
    child = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(60)"],
        start_new_session=True)
    try:
        own = testing.proc_stat(os.getpid())
        assert own.state in "RS" and own.ppid == os.getppid()
        assert own.pgid == os.getpgid(0) and own.cpu_ticks >= 0
        stat = testing.proc_stat(child.pid)
        assert stat.ppid == os.getpid() and stat.pgid == child.pid
        assert child.pid in testing.process_tree(os.getpid())
        assert testing.group_members(child.pid) == [child.pid]
        # Popen returns once exec has begun; the kernel sets the new
        # command line a moment later (an empty read in between, seen on a
        # loaded machine), so wait for it, boundedly.
        deadline = time.monotonic() + 30
        while (not testing.cmdline(child.pid)
               and time.monotonic() < deadline):
            time.sleep(0.01)
        assert "time.sleep(60)" in testing.cmdline(child.pid)
    finally:
        testing.kill_group(child)
        child.wait()
    assert testing.proc_stat(child.pid) is None
    assert testing.cmdline(child.pid) is None
    assert testing.group_members(child.pid) == []


def test_machine_jiffies_grow_and_busy_is_part_of_total():
    busy0, total0 = testing.machine_jiffies()
    sum(i * i for i in range(300_000))  # Some work.
    busy1, total1 = testing.machine_jiffies()
    assert 0 <= busy0 <= total0 and 0 <= busy1 <= total1
    assert total1 >= total0 and busy1 >= busy0


def test_tiny_train_config_is_small():
    config = testing.tiny_train_config("/tmp/x", use_lstm=True)
    assert config.learner.batch_size == 2 and config.num_actors == 1
    assert config.actor.agent.use_lstm is True
    with pytest.raises(AttributeError):
        config.num_actors = 3  # Frozen.
