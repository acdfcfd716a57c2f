"""Tests for impala_tf/runtime/sweep.py: reading a run's curve, and
running trainers (`train_all`) on small Python programs standing in for
them.

`sweep.train` with real trainers runs in the learning-curve and ablation
tools' tests.
"""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from impala_tf import testing
from impala_tf.runtime import sweep as lc

FRAMES_PER_RECORD = 1_000_000
SEED_1 = [None, -21, -20, -15, -8, 0, 7, 18, 19]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    base = tmp_path_factory.mktemp("curves")
    testing.write_progress(base / "seed_1", SEED_1, FRAMES_PER_RECORD,
                           level="pong", num_action_repeats=4,
                           episode_steps=100)
    return base


def test_read_curve_reads_the_trainers_records(runs):
    rows = lc.read_curve(str(runs / "seed_1"))
    assert [r["env_frames"] for r in rows] == [
        (i + 1) * FRAMES_PER_RECORD for i in range(len(SEED_1))]
    assert [r[lc.RETURN_KEY] for r in rows] == SEED_1
    assert all(r["fps"] >= 0 and r["elapsed_s"] >= 0 for r in rows)


def test_read_curve_after_a_resume_keeps_frames_increasing(tmp_path):
    """A run killed at 5M frames resumed from its 3M-frame checkpoint: the
    records it logged past 3M are replaced by the resumed run's."""
    path = tmp_path / "progress.jsonl"
    records = [(1, -21.0), (2, -20.0), (3, -19.0), (4, -18.0), (5, -17.0),
               (3.5, -10.0), (4.5, -9.0), (6, -8.0)]
    path.write_text("".join(
        json.dumps({"env_frames": int(f * 1e6), "fps": 1.0, "elapsed_s": 0,
                    lc.RETURN_KEY: ret}) + "\n" for f, ret in records)
        + '{"env_frames": 7000')  # A line being written.
    rows = lc.read_curve(str(tmp_path))
    assert [r["env_frames"] / 1e6 for r in rows] == [1, 2, 3, 3.5, 4.5, 6]
    assert [r[lc.RETURN_KEY] for r in rows] == [
        -21, -20, -19, -10, -9, -8]


def test_read_curve_keeps_the_rate_before_a_stops_record(tmp_path):
    """A clean stop right after a periodic record logs the same frames
    again with fps 0: its return replaces the row, the rate stays."""
    records = [(1e6, 10.0, 900.0, -20.0), (2e6, 20.0, 1000.0, -19.0),
               (2e6, 20.5, 0.0, -18.5)]
    (tmp_path / "progress.jsonl").write_text("".join(
        json.dumps({"env_frames": int(f), "elapsed_s": e, "fps": v,
                    lc.RETURN_KEY: ret}) + "\n" for f, e, v, ret in records))
    rows = lc.read_curve(str(tmp_path))
    assert [(r["env_frames"], r["elapsed_s"], r["fps"], r[lc.RETURN_KEY])
            for r in rows] == [(1_000_000, 10.0, 900.0, -20.0),
                               (2_000_000, 20.5, 1000.0, -18.5)]


def test_read_curve_without_a_run_is_a_usage_error(tmp_path):
    with pytest.raises(lc.UsageError, match="progress.jsonl does not exist"):
        lc.read_curve(str(tmp_path))
    (tmp_path / "progress.jsonl").write_text('{"env_frames": 1}\nnot json\n')
    with pytest.raises(lc.UsageError, match="line 2 is not JSON"):
        lc.read_curve(str(tmp_path))


def _records(path, records):
    with open(path / "progress.jsonl", "w") as f:
        for frames, ret, episodes in records:
            f.write(json.dumps({"env_frames": frames, "elapsed_s": 1.0,
                                "fps": 1.0, "episode_return_mean": ret,
                                "episodes": episodes}) + "\n")


def test_done_at_the_frames_or_at_the_return(tmp_path):
    assert not lc.done(str(tmp_path), 100)  # No progress file yet.
    _records(tmp_path, [(50, -20.0, 300), (90, 18.5, 600)])
    assert not lc.done(str(tmp_path), 100)
    assert lc.done(str(tmp_path), 90)
    assert lc.done(str(tmp_path), 100, stop_at_return=18)
    assert not lc.done(str(tmp_path), 100, stop_at_return=19)
    _records(tmp_path, [(90, 18.5, 60)])  # Too few games for the window.
    assert not lc.done(str(tmp_path), 100, stop_at_return=18)


def test_parse_list_takes_the_comma_separated_text_too():
    assert lc.parse_list("1,,3", "seeds", int) == [1, 3]
    with pytest.raises(lc.UsageError, match="--seeds is empty"):
        lc.parse_list(",", "seeds", int)
    with pytest.raises(lc.UsageError, match="lists a value twice"):
        lc.parse_list("2,2", "seeds", int)


# A stand-in trainer: writes its pid to <dir>/<name>.pid, prints a line, then
# waits up to WAIT seconds for <dir>/<other>.pid (the other job running at the
# same time) and exits 0 if it appeared, 1 if not.
RENDEZVOUS = """
import os, sys, time
d, name, other, wait = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
open(os.path.join(d, name + ".pid"), "w").write(str(os.getpid()))
print("stand-in", name, flush=True)
deadline = time.monotonic() + wait
while time.monotonic() < deadline:
    if os.path.exists(os.path.join(d, other + ".pid")):
        sys.exit(0)
    time.sleep(0.05)
sys.exit(1)
"""


def _rendezvous(tmp_path, name, other, wait_s, output=None):
    return lc.Job([sys.executable, "-c", RENDEZVOUS, str(tmp_path), name,
                   other, str(wait_s)], f"[test] {name}:", output)


def _quiet(*args, **kwargs):
    del args, kwargs


def test_train_all_runs_parallel_jobs_at_once(tmp_path):
    """Each stand-in exits 0 only if the other one ran beside it."""
    jobs = [_rendezvous(tmp_path, "a", "b", 60, str(tmp_path / "a.log")),
            _rendezvous(tmp_path, "b", "a", 60, str(tmp_path / "b.log"))]
    assert lc.train_all(jobs, parallel=2, log=_quiet) == [0, 0]
    assert (tmp_path / "a.log").read_text() == "stand-in a\n"
    assert (tmp_path / "b.log").read_text() == "stand-in b\n"


def test_train_all_one_at_a_time_stops_at_a_failure(tmp_path):
    """With parallel=1 the first stand-in waits alone and fails (status 1);
    no further job starts."""
    jobs = [_rendezvous(tmp_path, "a", "b", 1),
            _rendezvous(tmp_path, "b", "a", 1)]
    logged = []
    assert lc.train_all(jobs, parallel=1,
                        log=lambda m, **_: logged.append(m)) == [1, None]
    assert not (tmp_path / "b.pid").exists()
    assert "[test] a: ended with status 1" in logged


def test_train_all_stops_a_trainer_at_its_timeout(tmp_path):
    """A trainer past --timeout_s gets SIGTERM and counts as done (0)."""
    job = lc.Job([sys.executable, "-c", "import time; time.sleep(600)"],
                 "[test] sleeper:", None)
    started = time.monotonic()
    assert lc.train_all([job], timeout_s=1, log=_quiet) == [0]
    assert time.monotonic() - started < 60


def test_train_all_stops_its_trainers_when_stopped(tmp_path):
    """SIGTERM to the process running train_all (as `run_main` handles
    it) stops every trainer it runs."""
    driver = subprocess.Popen([sys.executable, "-c", f"""
import signal, sys
from impala_tf.runtime import sweep
signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
job = lambda name: sweep.Job([sys.executable, "-c", {RENDEZVOUS!r},
                              {str(tmp_path)!r}, name, "never", "600"],
                             name, None)
sweep.train_all([job("a"), job("b")], parallel=2)
"""], cwd=testing.REPO)
    try:
        pids = []
        deadline = time.monotonic() + 120
        while len(pids) < 2 and time.monotonic() < deadline:
            pids = [int((tmp_path / f"{n}.pid").read_text())
                    for n in "ab" if (tmp_path / f"{n}.pid").exists()
                    and (tmp_path / f"{n}.pid").read_text()]
            time.sleep(0.05)
        assert len(pids) == 2, "the stand-ins did not start"
        driver.send_signal(signal.SIGTERM)
        assert driver.wait(timeout=60) == 143
        for pid in pids:
            with pytest.raises(ProcessLookupError):
                os.kill(pid, 0)
    finally:
        if driver.poll() is None:
            driver.kill()
            driver.wait()
