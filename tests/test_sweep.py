"""Tests for impala_tf/runtime/sweep.py: reading a run's curve.

The training side of sweep (`sweep.train`) runs in the learning-curve and
ablation tools' tests.
"""

import json

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
