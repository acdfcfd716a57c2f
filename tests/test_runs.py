"""Tests for impala_tf.runtime.runs: a run directory refuses a config it does
not hold in one sentence, repairs a half-written progress line, and lets
one process at a time train in it."""

import os
import subprocess
import sys

import pytest

from impala_tf import testing
from impala_tf.runtime import runs
from tests import reliability_support

make_config = reliability_support.make_config


@pytest.fixture(scope="module")
def saved_run(tmp_path_factory):
    """A run directory with two checkpoints of a trained shallow agent."""
    return reliability_support.save_run(tmp_path_factory.mktemp("saved"))


def test_incompatible_run_config_is_one_sentence(saved_run):
    with pytest.raises(runs.RunError, match="holds a run with agent="):
        runs.RunDirectory(saved_run).check_compatible(
            make_config(saved_run, torso="deep"))


def test_progress_repair_drops_a_half_written_line(tmp_path):
    path = tmp_path / "progress.jsonl"
    path.write_text('{"env_frames": 1}\n{"env_fra')
    runs.RunDirectory(str(tmp_path)).repair_progress()
    assert path.read_text() == '{"env_frames": 1}\n'


def test_a_claimed_directory_refuses_a_second_claim_naming_the_holder(
        tmp_path):
    first = runs.RunDirectory(str(tmp_path))
    first.claim()
    first.claim()  # Claiming again in the same object is a no-op.
    with pytest.raises(runs.RunError,
                       match=rf"in use by another training process "
                             rf"\(pid {os.getpid()}\)"):
        runs.RunDirectory(str(tmp_path)).claim()
    first.release()
    second = runs.RunDirectory(str(tmp_path))
    second.claim()
    second.release()


def test_a_killed_holder_leaves_no_stale_claim(tmp_path):
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import sys, time; from impala_tf.runtime import runs; "
         "d = runs.RunDirectory(sys.argv[1]); d.claim(); "
         "print('held', flush=True); time.sleep(300)", str(tmp_path)],
        cwd=testing.REPO, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline() == "held\n"
        with pytest.raises(runs.RunError, match=rf"pid {holder.pid}\)"):
            runs.RunDirectory(str(tmp_path)).claim()
    finally:
        holder.kill()
        holder.wait()
        holder.stdout.close()
    after = runs.RunDirectory(str(tmp_path))
    after.claim()  # SIGKILL dropped the lock.
    assert (tmp_path / runs.LOCK_FILE).read_text() == f"{os.getpid()}\n"
    after.release()
