"""Reliability with real processes and real signals.

Every learner runs in a private network namespace (`tests.procs`) and in its
own process group, killed with everything it started when the test ends,
whatever happens. Actor processes are found by that process group in /proc,
so orphans (actors whose learner died) are seen too. Single-process checks
(NaN updates, exact resume, damaged checkpoints, the watchdog and the
supervisor) are in tests/test_supervisor.py, test_watchdog.py,
test_checkpoints.py, test_runs.py, test_learner.py and test_learner_loop.py.
"""

import hashlib
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from impala_tf.runtime import progress
from impala_tf.runtime import runs
from impala_tf import testing
from tests import faulty_envs
from tests import procs

pytestmark = pytest.mark.slow

TINY = ["--use_lstm=false", "--batch_size=4", "--unroll_length=10",
        "--log_interval_s=1"]
TOY = "--level_name=" + testing.TOY_LEVEL


def _alive(pid):
    stat = testing.proc_stat(pid)
    return stat is not None and stat.state != "Z"


def actor_pids(pgid):
    return [pid for pid in testing.group_members(pgid)
            if "spawn_main" in (testing.cmdline(pid) or "")]


class Learner:
    """`python -m impala_tf.cli.experiment` as a live process with a log file."""

    def __init__(self, flags, log_path, env=None):
        self.log_path = log_path
        self._log = open(log_path, "w")
        full_env = dict(os.environ, PYTHONUNBUFFERED="1",
                        TF_CPP_MIN_LOG_LEVEL="3", **(env or {}))
        args = [sys.executable, "-m", "impala_tf.cli.experiment"] + flags
        # unshare and bash exec: the process we start is the learner itself.
        self.proc = subprocess.Popen(
            testing.isolated_command(args), cwd=testing.REPO, env=full_env,
            stdout=self._log, stderr=subprocess.STDOUT,
            start_new_session=True)
        self.pid = self.proc.pid

    def text(self):
        with open(self.log_path) as f:
            return f.read()

    def wait_for(self, pattern, timeout_s=120, after=0):
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            match = re.compile(pattern).search(self.text(), after)
            if match:
                return match
            if self.proc.poll() is not None:
                break
            time.sleep(0.2)
        raise AssertionError(f"no /{pattern}/ in the log (rc "
                             f"{self.proc.poll()}):\n{self.text()[-4000:]}")

    def wait(self, timeout_s=120):
        try:
            return self.proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"still running:\n{self.text()[-4000:]}")

    def kill_all(self):
        testing.kill_group(self.proc)
        self.proc.wait()
        self._log.close()


@pytest.fixture
def start():
    started = []

    def launch(flags, log_path, env=None):
        learner = Learner(flags, str(log_path), env)
        started.append(learner)
        return learner

    yield launch
    for learner in started:
        learner.kill_all()


def gone_within(pids, timeout_s):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not [p for p in pids if _alive(p)]:
            return True
        time.sleep(0.1)
    return False


def leftovers(pgid, timeout_s=5.0):
    """Command lines of the group's processes still there after a grace
    period (multiprocessing's resource tracker exits just after us)."""
    deadline = time.monotonic() + timeout_s
    while testing.group_members(pgid) and time.monotonic() < deadline:
        time.sleep(0.1)
    return [(testing.cmdline(pid) or "")[:200]
            for pid in testing.group_members(pgid)]


def records(logdir):
    return progress.read_records(logdir)


def checkpoint_values(logdir):
    import tensorflow as tf  # pylint: disable=g-import-not-at-top
    path = tf.train.latest_checkpoint(os.path.join(logdir, "checkpoints"))
    reader = tf.train.load_checkpoint(path)
    return path, {k: reader.get_tensor(k)
                  for k in reader.get_variable_to_dtype_map()}


def counter(values, name):
    return int(values[f"{name}/.ATTRIBUTES/VARIABLE_VALUE"])


@procs.requires_netns
def test_actor_faults_are_survived_and_counted(start, tmp_path):
    """Env raises, env hangs, a NaN reward, actors SIGKILLed: the run
    reaches its frame target and progress.jsonl counts every event."""
    faults = tmp_path / "faults"
    faults.mkdir()
    logdir = str(tmp_path / "run")
    run = start(["--level_name=tests.faulty_envs:flaky_env", "--num_actors=2",
                 "--total_environment_frames=6000", "--env_timeout_s=3",
                 # One env per actor: slow enough actors that the run is
                 # still going when the test SIGKILLs them (32 by default
                 # for a user level reach 6000 frames too soon).
                 "--envs_per_actor=1",
                 "--reward_clipping=none", "--logdir=" + logdir] + TINY,
                tmp_path / "log", env={faulty_envs.FAULT_DIR_VAR: str(faults)})
    level = "'tests.faulty_envs:flaky_env'"
    run.wait_for(rf"environment {level} raised RuntimeError in step\(\): "
                 "deliberate failure for the test")
    run.wait_for(rf"environment {level} has not returned from step\(\) for "
                 r"\d+ s \(--env_timeout_s=3\); killing the actor")
    run.wait_for(r"non-finite loss or gradient .*update skipped")
    killed = 0
    for _ in range(2):  # SIGKILL a working actor at an arbitrary moment.
        run.wait_for(r"\[impala\] frames", after=len(run.text()))
        pids = actor_pids(run.pid)
        assert pids
        os.kill(pids[killed % len(pids)], signal.SIGKILL)
        killed += 1
        run.wait_for(r"was killed by SIGKILL; restarting it in",
                     after=len(run.text()) - 2000)
    assert run.wait(180) == 0, run.text()[-4000:]
    log = run.text()
    assert log.count("was killed by SIGKILL; restarting") >= 2
    assert "Traceback" not in log, log
    last = records(logdir)[-1]
    assert last["env_frames"] >= 6000
    assert last["env_errors"] >= 1 and last["env_timeouts"] >= 1
    assert last["actor_restarts"] >= 4 and last["nonfinite_skips"] >= 1
    _, values = checkpoint_values(logdir)
    for key, value in values.items():
        if np.issubdtype(np.asarray(value).dtype, np.floating):
            assert np.all(np.isfinite(value)), key
    assert not leftovers(run.pid)


@procs.requires_netns
def test_learner_kill_resume_and_clean_stops(start, tmp_path):
    """SIGKILL the learner: its actors exit; the same command resumes with
    the checkpoint's counters; SIGTERM and SIGINT then stop cleanly with a
    final checkpoint that the next run resumes from exactly."""
    logdir = str(tmp_path / "run")
    flags = [TOY, "--num_actors=1", "--total_environment_frames=10000000",
             "--checkpoint_interval_s=1", "--logdir=" + logdir] + TINY
    first = start(flags, tmp_path / "log1")
    first.wait_for(r"\[impala\] checkpoint \S+ at [\d,]+ frames")
    first.wait_for(r"\[impala\] frames", after=len(first.text()))
    actors = actor_pids(first.pid)
    assert len(actors) == 1
    os.kill(first.pid, signal.SIGKILL)
    assert first.wait(10) == -signal.SIGKILL
    assert gone_within(actors, 10), "actor outlived its learner"
    path, saved = checkpoint_values(logdir)

    for number, sig in ((2, signal.SIGTERM), (3, signal.SIGINT)):
        run = start(flags, tmp_path / f"log{number}")
        match = run.wait_for(
            r"resumed from (\S+) at ([\d,]+) frames \(step ([\d,]+)\)")
        assert match.group(1) == path
        assert int(match.group(2).replace(",", "")) == counter(
            saved, "num_frames")
        assert int(match.group(3).replace(",", "")) == counter(
            saved, "num_steps")
        assert counter(saved, "num_steps") > 0
        if sig == signal.SIGTERM:  # Mid-training.
            run.wait_for(r"\[impala\] frames", after=match.end())
            assert records(logdir)[-1]["learner_steps"] > counter(
                saved, "num_steps")
        else:  # While the actor is still starting.
            deadline = time.monotonic() + 60
            while not actor_pids(run.pid) and time.monotonic() < deadline:
                time.sleep(0.1)
        assert actor_pids(run.pid)
        os.kill(run.pid, sig)
        assert run.wait(60) == 0, run.text()[-4000:]
        log = run.text()
        assert f"{sig.name}: stopping after the current step" in log
        done = re.search(r"saved (\S+) at ([\d,]+) frames", log)
        assert done, log[-3000:]
        assert "Traceback" not in log, log
        assert not leftovers(run.pid), "processes outlived the learner"
        path, saved = checkpoint_values(logdir)
        assert path == done.group(1)
        assert counter(saved, "num_frames") == int(
            done.group(2).replace(",", ""))
        # The last record counts exactly the steps the checkpoint holds.
        assert records(logdir)[-1]["learner_steps"] == counter(
            saved, "num_steps")
    progress.read_records(logdir, strict=True)  # No half-written line.


def _digest(directory):
    """sha256 and mtime of every file but train.lock (whose pid is
    rewritten by each start that claims the directory)."""
    out = {}
    for root, _, files in os.walk(directory):
        for name in files:
            if name == runs.LOCK_FILE:
                continue
            path = os.path.join(root, name)
            with open(path, "rb") as f:
                out[os.path.relpath(path, directory)] = (
                    hashlib.sha256(f.read()).hexdigest(),
                    os.stat(path).st_mtime_ns)
    return out


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    """A short completed training run (with checkpoints) to damage."""
    logdir = str(tmp_path_factory.mktemp("finished") / "run")
    result = testing.run_impala(
        [TOY, "--num_actors=1", "--total_environment_frames=400",
         "--logdir=" + logdir] + TINY, timeout=180)
    assert result.returncode == 0, result.stderr[-3000:]
    return logdir


def _truncate_data(logdir):
    ckdir = os.path.join(logdir, "checkpoints")
    for name in os.listdir(ckdir):
        if name.endswith(".data-00000-of-00001"):
            path = os.path.join(ckdir, name)
            with open(path, "r+b") as f:
                f.truncate(os.path.getsize(path) // 2)


@procs.requires_netns
@pytest.mark.parametrize("flags,damage,fragment", [
    (["--agent=deep"], None, "holds a run with agent='shallow' but this "
     "run has agent='deep'"),
    (["--level_name=tests.faulty_envs:three_actions"], "no_config",
     "was written by a different agent"),
    ([], _truncate_data, "is corrupt (IndexError"),
])
def test_bad_checkpoint_exits_2_and_keeps_files(finished_run, tmp_path, flags,
                                                damage, fragment):
    logdir = str(tmp_path / "copy")
    subprocess.run(["cp", "-a", finished_run, logdir], check=True)
    if damage == "no_config":
        os.remove(os.path.join(logdir, "run_config.json"))
    elif damage:
        damage(logdir)
    before = _digest(logdir)
    result = testing.run_impala(
        [TOY, "--num_actors=1", "--total_environment_frames=800",
         "--logdir=" + logdir] + TINY + flags, timeout=120)
    assert result.returncode == 2, (result.stdout, result.stderr)
    errors = [l for l in result.stderr.splitlines() if l.startswith("error:")]
    assert len(errors) == 1 and fragment in errors[0], result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    assert _digest(logdir) == before


def test_unusable_logdir_and_environment_exit_2(tmp_path):
    readonly = tmp_path / "ro"
    readonly.mkdir()
    if os.geteuid() == 0:  # root writes anywhere: mount it read-only.
        if not testing.can_isolate():
            pytest.skip("root needs `unshare -m` to mount a read-only dir")
        cmd = testing.isolated(
            f"mount -t tmpfs -o ro tmpfs {readonly} && exec " + shlex.join(
                [sys.executable, "-m", "impala_tf.cli.experiment", TOY,
                 f"--logdir={readonly}/run"]), mount=True)
    else:
        readonly.chmod(0o500)
        cmd = [sys.executable, "-m", "impala_tf.cli.experiment", TOY,
               f"--logdir={readonly}/run"]
    result = subprocess.run(cmd, cwd=testing.REPO, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 2, result.stderr
    assert re.search(r"^error: --logdir \S+ is not writable \((Read-only "
                     r"file system|Permission denied)\)$", result.stderr,
                     re.M), result.stderr
    result = testing.run_impala(
        ["--level_name=tests.faulty_envs:broken_env",
         "--logdir=" + str(tmp_path / "x")], timeout=120, isolate=False)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert ("error: could not create the environment of --level_name="
            "tests.faulty_envs:broken_env (RuntimeError: no such device"
            in result.stderr), result.stderr


@procs.requires_netns
def test_killed_actors_never_deliver_partial_trajectories(tmp_path):
    """SIGKILL actors while they send 4 MB enqueues: every trajectory the
    learner dequeues is whole and exactly what an actor built."""
    cmd = testing.isolated_command(
        [sys.executable, "-m", "tests.queue_kill_driver"])
    proc = subprocess.Popen(cmd, cwd=testing.REPO, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True,
                            env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"),
                            start_new_session=True)
    try:
        out, err = proc.communicate(timeout=150)
    finally:
        testing.kill_group(proc)
    assert proc.returncode == 0, err[-3000:]
    stats = json.loads(out.strip().splitlines()[-1])
    assert stats["kills"] == 6 and stats["mid"] >= 1, stats
    assert stats["received"] > 0 and stats["bad"] == 0, stats
