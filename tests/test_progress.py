"""Tests for impala_tf.runtime.progress: the progress.jsonl writer and its reader."""

import io
import json

import numpy as np
import pytest

from impala_tf.runtime import progress

T, B = 3, 2


def _step(frames, steps, returns=(), level_ids=(0, 0), loss=1.5):
    """One learner step's numpy outputs; `returns`: (t, b, return) ends."""
    out = {
        "num_frames": np.int64(frames), "num_steps": np.int64(steps),
        "total_loss": np.float32(loss), "grad_norm": np.float32(2.0),
        "nonfinite_skips": np.int64(0),
        "policy_lag": np.array([1.0, 3.0], np.float32),
        "game_over": np.zeros([T, B], bool),
        "episode_return": np.zeros([T, B], np.float32),
        "episode_step": np.zeros([T, B], np.int32),
        "level_id": np.array(level_ids, np.int32),
    }
    for t, b, ret in returns:
        out["game_over"][t, b] = True
        out["episode_return"][t, b] = ret
        out["episode_step"][t, b] = 10
    return out


def _logger(logdir, console=None, levels=("toy",), **kwargs):
    return progress.ProgressLogger(
        str(logdir), levels, num_action_repeats=4, total_frames=1000,
        console=console, **kwargs)


def test_writer_records_are_what_the_reader_returns(tmp_path):
    console = io.StringIO()
    logger = _logger(tmp_path, console, extra=lambda: {"actors": 2})
    logger.add(_step(100, 1, returns=[(0, 0, 4.0), (2, 1, 6.0)]))
    first = logger.log()
    logger.add(_step(200, 2, returns=[(1, 0, 8.0)], loss=2.5))
    second = logger.log()
    logger.close()
    records = progress.read_records(str(tmp_path))
    assert records == [json.loads(json.dumps(first)),
                       json.loads(json.dumps(second))]
    assert [r["env_frames"] for r in records] == [100, 200]
    assert [r["learner_steps"] for r in records] == [1, 2]
    assert records[0]["episode_return_mean"] == 5.0
    assert records[1]["episode_return_mean"] == 6.0  # The last 100 games.
    assert records[1]["episodes"] == 3
    assert records[1]["episodes_in_interval"] == 1
    assert records[1]["total_loss"] == 2.5
    assert records[0]["policy_lag_mean"] == 2.0
    assert records[1]["actors"] == 2
    lines = console.getvalue().splitlines()
    assert len(lines) == 2 and lines[1].startswith("[impala] frames 200 ")
    assert "return 6.00 (3 episodes)" in lines[1]
    assert progress.path(str(tmp_path)) == str(tmp_path / "progress.jsonl")


def test_a_stop_right_after_a_record_keeps_its_rate(tmp_path):
    console = io.StringIO()
    logger = _logger(tmp_path, console)
    logger.add(_step(100, 1))
    logger.add(_step(300, 2))
    periodic = logger.log()
    stop = logger.log(final=True)
    logger.close()
    assert periodic["fps"] > 0
    assert stop["env_frames"] == 300 and stop["fps"] == periodic["fps"]
    assert "frames/s over the run" in console.getvalue().splitlines()[-1]


def test_a_periodic_record_without_frames_shows_the_stall(tmp_path):
    logger = _logger(tmp_path)
    logger.add(_step(100, 1))
    logger.add(_step(300, 2))
    assert logger.log()["fps"] > 0
    assert logger.log()["fps"] == 0
    logger.close()


def test_per_level_returns_for_a_level_set(tmp_path):
    logger = _logger(tmp_path, levels=("a", "b"),
                     suite_scores=lambda means: {"score": len(means)})
    logger.add(_step(100, 1, returns=[(0, 0, 1.0), (0, 1, 3.0)],
                     level_ids=(0, 1)))
    logger.log()
    logger.close()
    record, = progress.read_records(str(tmp_path))
    assert record["episode_return_per_level"] == {"a": 1.0, "b": 3.0}
    assert record["score"] == 2


def test_reader_of_a_missing_file_is_empty(tmp_path):
    assert progress.read_records(str(tmp_path)) == []


def test_reader_skips_a_line_being_written_unless_strict(tmp_path):
    path = tmp_path / "progress.jsonl"
    path.write_text('{"env_frames": 1}\n\n{"env_frames": 2}\n{"env_fr')
    assert progress.read_records(str(tmp_path)) == [{"env_frames": 1},
                                                    {"env_frames": 2}]
    with pytest.raises(ValueError, match="half-written"):
        progress.read_records(str(tmp_path), strict=True)
    progress.repair(str(tmp_path))
    assert path.read_text() == '{"env_frames": 1}\n\n{"env_frames": 2}\n'
    assert len(progress.read_records(str(tmp_path), strict=True)) == 2


def test_reader_refuses_a_complete_line_that_is_not_json(tmp_path):
    (tmp_path / "progress.jsonl").write_text('{"env_frames": 1}\nnot json\n')
    with pytest.raises(ValueError, match="line 2 is not JSON"):
        progress.read_records(str(tmp_path))


def test_repair_of_a_missing_or_whole_file_changes_nothing(tmp_path):
    progress.repair(str(tmp_path))
    assert not (tmp_path / "progress.jsonl").exists()
    (tmp_path / "progress.jsonl").write_text('{"a": 1}\n')
    progress.repair(str(tmp_path))
    assert (tmp_path / "progress.jsonl").read_text() == '{"a": 1}\n'


def test_reached_return_needs_a_full_window():
    record = {"episode_return_mean": 18.5, "episodes": 100}
    assert progress.reached_return(record, 18)
    assert not progress.reached_return(record, 19)
    assert not progress.reached_return(dict(record, episodes=99), 18)
    assert not progress.reached_return(
        dict(record, episode_return_mean=None), 18)
    assert not progress.reached_return(record, None)
    assert not progress.reached_return(None, 18)
    assert progress.reached_return(dict(record, episodes=5), 18, window=5)


def test_episode_windows_keep_the_last_window_overall_and_per_level():
    windows = progress.EpisodeWindows(["a", "b"], window=3)
    assert windows.mean() is None and windows.level_means() == {}
    assert windows.size() == 0
    for level, ret in [("a", 1), ("b", 2), ("a", 3), ("a", 5), ("a", 7)]:
        windows.add(level, ret)
    assert windows.episodes == 5 and windows.size() == 3
    assert windows.mean() == pytest.approx(np.mean([3, 5, 7]))
    assert windows.level_means() == {"a": pytest.approx(5.0), "b": 2.0}


def test_episode_windows_state_round_trips_through_json():
    windows = progress.EpisodeWindows(["a", "b"], window=3)
    for level, ret in [("a", 1.5), ("b", -2.0), ("a", 3.25), ("b", 4.0)]:
        windows.add(level, ret)
    state = json.loads(json.dumps(windows.state()))
    again = progress.EpisodeWindows(["a", "b"], window=3)
    again.load(state)
    assert again.state() == windows.state()
    assert (again.episodes, again.mean(), again.level_means()) == (
        4, windows.mean(), windows.level_means())
    # A smaller window keeps the last returns; unknown levels are ignored.
    small = progress.EpisodeWindows(["a", "c"], window=1)
    small.load(state)
    assert small.state() == {"episodes": 4, "returns": [4.0],
                             "per_level": {"a": [3.25], "c": []}}


def test_a_logger_given_restored_windows_goes_on_from_them(tmp_path):
    windows = progress.EpisodeWindows(["toy"])
    for ret in (2.0, 4.0):
        windows.add("toy", ret)
    logger = _logger(tmp_path, episodes=windows)
    logger.add(_step(100, 1, returns=[(0, 0, 6.0)]))
    record = logger.log()
    logger.close()
    assert record["episodes"] == 3 and logger.episodes == 3
    assert record["episode_return_mean"] == 4.0
    assert windows.episodes == 3  # The same object, as the checkpoint's.
