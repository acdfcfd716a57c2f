"""Tests for impala_tf/runtime/curves.py: thresholds, the band across
seeds, wall time, the CSV, the plot and the table.

The curves are read (`sweep.read_curve`) from progress.jsonl files written
by the trainer's own writer (`testing.write_progress`) with made-up
returns; the statistics are checked against numbers worked out by hand.
"""

import csv

import numpy as np
import pytest

from impala_tf import testing
from impala_tf.errors import UsageError
from impala_tf.runtime import curves as lc
from impala_tf.runtime import sweep

FRAMES_PER_RECORD = 1_000_000


def write_run(logdir, returns):
    """A Pong run's progress.jsonl (`testing.write_progress`),
    FRAMES_PER_RECORD frames per record."""
    return testing.write_progress(logdir, returns, FRAMES_PER_RECORD,
                                  level="pong", num_action_repeats=4,
                                  episode_steps=100)


SEED_1 = [None, -21, -20, -15, -8, 0, 7, 18, 19]
SEED_2 = [None, -21, -21, -19, -15, -10, -2, 3, 12]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    base = tmp_path_factory.mktemp("curves")
    write_run(base / "seed_1", SEED_1)
    write_run(base / "seed_2", SEED_2)
    return base


def _curves(runs, seeds=(1, 2)):
    return {s: sweep.read_curve(str(runs / f"seed_{s}")) for s in seeds}


def test_frames_to_reach_is_the_first_crossing(runs):
    rows = sweep.read_curve(str(runs / "seed_1"))
    assert lc.frames_to_reach(rows, -15) == 4 * FRAMES_PER_RECORD
    assert lc.frames_to_reach(rows, 0) == 6 * FRAMES_PER_RECORD
    assert lc.frames_to_reach(rows, 18) == 8 * FRAMES_PER_RECORD
    assert lc.frames_to_reach(rows, 20) is None
    dip = [dict(r) for r in rows]
    dip[5][lc.RETURN_KEY] = -30  # Falling back does not move the crossing.
    assert lc.frames_to_reach(dip, -15) == 4 * FRAMES_PER_RECORD


def test_frames_to_reach_needs_a_full_window(runs):
    """A mean over fewer than RETURN_WINDOW games (the first games of a
    run) never counts as reaching a return; the first full window does."""
    rows = [dict(r) for r in sweep.read_curve(str(runs / "seed_1"))]
    assert rows[3]["episodes"] >= 100
    for i, episodes in ((1, 1), (2, 40), (3, 99)):
        rows[i]["episodes"] = episodes
        rows[i][lc.RETURN_KEY] = 20
    assert lc.frames_to_reach(rows, 18) == 8 * FRAMES_PER_RECORD
    rows[4]["episodes"] = 100
    rows[4][lc.RETURN_KEY] = 18
    assert lc.frames_to_reach(rows, 18) == 5 * FRAMES_PER_RECORD


def test_best_return_counts_full_windows_only(runs):
    """The best is the highest return over a full window, the first row on
    a tie; a higher mean over fewer games, or a fall after the peak, does
    not move it; legacy rows without an episode count are full."""
    rows = [dict(r) for r in sweep.read_curve(str(runs / "seed_1"))]
    assert lc.best_return(rows) == (19, 9 * FRAMES_PER_RECORD)
    rows[1].update(episodes=3, **{lc.RETURN_KEY: 21})
    rows.append(dict(rows[-1], env_frames=10 * FRAMES_PER_RECORD,
                     **{lc.RETURN_KEY: 19}))
    rows.append(dict(rows[-1], env_frames=11 * FRAMES_PER_RECORD,
                     **{lc.RETURN_KEY: -3}))
    assert lc.best_return(rows) == (19, 9 * FRAMES_PER_RECORD)
    legacy = [dict(r, episodes=None) for r in rows[2:]]
    assert lc.best_return(legacy) == (19, 9 * FRAMES_PER_RECORD)
    assert lc.best_return(rows[:1]) == (None, None)


def test_summarize(runs):
    rows = sweep.read_curve(str(runs / "seed_2"))
    numbers = lc.summarize(rows, [-15, 0, 18])
    assert numbers["frames_to"] == {"-15": 5 * FRAMES_PER_RECORD,
                                    "0": 8 * FRAMES_PER_RECORD, "+18": None}
    assert numbers["final_return"] == 12
    assert numbers["final_frames"] == 9 * FRAMES_PER_RECORD
    assert (numbers["best_return"], numbers["best_return_frames"]) == (
        12, 9 * FRAMES_PER_RECORD)
    # testing.write_progress logs one record per second of elapsed time.
    assert numbers["wall_hours"] == pytest.approx(
        rows[-1]["elapsed_s"] / 3600)


def test_seed_band_interpolates_over_the_shared_range():
    a = [{"env_frames": f, lc.RETURN_KEY: r}
         for f, r in [(0, 0.0), (10, 10.0)]]
    b = [{"env_frames": f, lc.RETURN_KEY: r}
         for f, r in [(2, 2.0), (4, None), (6, -2.0), (12, 4.0)]]
    band = lc.seed_band({1: a, 2: b}, points=5)
    np.testing.assert_allclose(band["frames"], [2, 4, 6, 8, 10])
    # a(f) = f; b: 2 at 2, -2 at 6 (None skipped), then +1 per frame.
    expected = [(2 + 2) / 2, (4 + 0) / 2, (6 - 2) / 2, (8 + 0) / 2,
                (10 + 2) / 2]
    np.testing.assert_allclose(band["mean"], expected)
    np.testing.assert_allclose(band["min"], [2, 0, -2, 0, 2])
    np.testing.assert_allclose(band["max"], [2, 4, 6, 8, 10])
    assert lc.seed_band({1: a, 2: [{"env_frames": 1,
                                    lc.RETURN_KEY: None}]}) is None


def test_wall_seconds_add_up_across_resumes():
    """elapsed_s restarts at 0 when a run resumes; the wall time keeps
    adding."""
    rows = [{"elapsed_s": e} for e in (10, 20, 30, 5, 15, 0, 4)]
    assert lc.wall_seconds(rows) == [10, 20, 30, 35, 45, 45, 49]


def test_across_seeds_is_the_median_and_range_of_those_that_reached():
    per_seed = {s: {"frames_to": {"-15": f15, "+18": f18}}
                for s, f15, f18 in [("1", 4, 8), ("2", 5, None),
                                    ("3", 9, 13), ("4", 7, 12)]}
    stats = lc.across_seeds(per_seed, [-15, 18])
    assert stats["-15"] == {"median": 6.0, "min": 4, "max": 9,
                            "reached": 4, "seeds": 4}
    assert stats["+18"] == {"median": 12.0, "min": 8, "max": 13,
                            "reached": 3, "seeds": 4}
    none = lc.across_seeds({"1": {"frames_to": {"0": None}}}, [0])
    assert none["0"]["median"] is None and none["0"]["reached"] == 0


def test_write_csv(runs, tmp_path):
    lc.write_csv(_curves(runs), str(tmp_path / "c.csv"))
    with open(tmp_path / "c.csv") as f:
        rows = list(csv.reader(f))
    assert tuple(rows[0]) == lc.CSV_COLUMNS
    assert len(rows) == 1 + len(SEED_1) + len(SEED_2)
    assert rows[1][0] == "1" and rows[1][5:] == ["0", ""]  # No episode yet.
    assert rows[-1][0] == "2" and float(rows[-1][6]) == 12
    assert int(rows[-1][5]) == 8 * 100  # A full window per record.
    assert int(rows[-1][1]) == 9 * FRAMES_PER_RECORD


def test_plot_has_seeds_their_band_and_mean_fps_and_wall_time(runs,
                                                              tmp_path):
    fig = lc.plot(_curves(runs), str(tmp_path / "c.png"), "title here",
                  references=[("target +18", 18), ("random -20.7", -20.7)])
    top, fps, wall = fig.axes  # Three panels, no twin axis.
    labels = [line.get_label() for line in top.get_lines()]
    assert labels == ["seed 1", "seed 2", "mean of 2 seeds", "target +18",
                      "random -20.7"]
    assert [c.get_label() for c in top.collections] == ["min-max of 2 seeds"]
    assert top.get_lines()[-2].get_linestyle() == "--"
    assert top.get_lines()[-1].get_linestyle() == ":"
    assert list(top.get_lines()[-1].get_ydata()) == [-20.7, -20.7]
    assert [line.get_label() for line in fps.get_lines()] == [
        "seed 1", "seed 2"]
    assert fps.get_ylabel() == "frames/s"
    assert wall.get_ylabel() == "wall hours"
    assert top.get_title() == "title here"
    with open(tmp_path / "c.png", "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"


def _rate_rows(elapsed, fps):
    return [{"env_frames": (i + 1) * FRAMES_PER_RECORD, "elapsed_s": e,
             "fps": f} for i, (e, f) in enumerate(zip(elapsed, fps))]


def test_rate_points_leave_out_a_partial_last_interval_but_keep_stalls():
    # Records every 10 s; one full interval without frames (a stall, 0
    # frames/s) and a last record 0.2 s after the one before it.
    rows = _rate_rows([10, 20, 30, 40, 40.2], [100, 110, 0, 120, 0])
    frames, fps = lc.rate_points(rows)
    assert frames == [1.0, 2.0, 3.0, 4.0]
    assert fps == [100, 110, 0, 120]


def test_rate_points_measure_intervals_across_a_resume():
    # The resumed run restarts elapsed_s; its first record came 10 s in.
    rows = _rate_rows([10, 20, 10, 20, 21], [100, 100, 90, 95, 400])
    assert lc.rate_points(rows)[1] == [100, 100, 90, 95]


def test_plot_draws_the_kept_rates(runs, tmp_path):
    curves = _curves(runs, (1,))
    fig = lc.plot(curves, str(tmp_path / "c.png"), "t")
    frames, fps = lc.rate_points(curves[1])
    assert list(fig.axes[1].get_lines()[0].get_ydata()) == fps
    assert list(fig.axes[1].get_lines()[0].get_xdata()) == frames


def test_plot_one_seed_has_no_mean_or_band(runs, tmp_path):
    fig = lc.plot(_curves(runs, (1,)), str(tmp_path / "c.png"), "t")
    assert [line.get_label() for line in fig.axes[0].get_lines()] == [
        "seed 1"]
    assert not fig.axes[0].collections


def test_plot_of_named_runs_without_a_band(runs, tmp_path):
    named = {f"run {k}": rows for k, rows in _curves(runs).items()}
    fig = lc.plot(named, str(tmp_path / "c.png"), "t", label="{}",
                  band=False, references=[("target", -15)])
    assert [line.get_label() for line in fig.axes[0].get_lines()] == [
        "run 1", "run 2", "target"]
    assert not fig.axes[0].collections
    assert [line.get_label() for line in fig.axes[1].get_lines()] == [
        "run 1", "run 2"]


def test_report_has_a_row_per_seed_the_median_and_the_range(runs):
    table, summary = lc.report(_curves(runs), [-15, 0, 18])
    lines = table.splitlines()
    assert "frames to -15" in lines[0] and "wall hours" in lines[0]
    assert [l.split()[0] for l in lines[1:]] == ["seed", "seed", "median",
                                                  "range"]
    # Seed 1 reached -15 at 4M and +18 at 8M; seed 2 -15 at 5M, not +18.
    assert "4,500,000 (2/2)" in lines[3] and "8,000,000 (1/2)" in lines[3]
    assert "4,000,000-5,000,000" in lines[4]
    assert "best (at frames)" in lines[0]
    assert "19.00 (9,000,000)" in lines[1]
    assert "12.00 (9,000,000)" in lines[2]
    assert summary["across_seeds"]["+18"]["reached"] == 1
    assert summary["seeds"]["2"]["final_return"] == 12


def test_read_csv_gives_back_what_write_csv_wrote(runs, tmp_path):
    written = _curves(runs)
    lc.write_csv(written, str(tmp_path / "c.csv"))
    read = lc.read_csv(str(tmp_path / "c.csv"))
    assert list(read) == ["1", "2"]
    for seed, rows in written.items():
        assert [(r["env_frames"], r[lc.RETURN_KEY], r["episodes"])
                for r in read[str(seed)]] == [
            (r["env_frames"], r[lc.RETURN_KEY], r["episodes"]) for r in rows]
    assert list(lc.read_csv(str(tmp_path / "c.csv"), ["2"])) == ["2"]
    with pytest.raises(UsageError, match=r"no rows for seed\(s\) 3"):
        lc.read_csv(str(tmp_path / "c.csv"), ["2", "3"])


def test_read_csv_of_an_older_file_without_episodes(tmp_path):
    """A CSV written before the episodes column: its means count as full
    windows (the column is None), and wall time comes from elapsed_s."""
    path = tmp_path / "old.csv"
    path.write_text("seed,env_frames,elapsed_s,fps,episode_return_mean\n"
                    "1,1000,10.0,100.0,\n1,2000,20.0,100.0,-15.5\n"
                    "1,3000,30.0,100.0,18.25\n")
    rows = lc.read_csv(str(path))["1"]
    assert [r["episodes"] for r in rows] == [None] * 3
    assert lc.frames_to_reach(rows, 18) == 3000
    assert lc.wall_seconds(rows) == [10.0, 20.0, 30.0]
    path.write_text("seed,frames\n1,2\n")
    with pytest.raises(UsageError, match="not a learning-curve CSV"):
        lc.read_csv(str(path))
    with pytest.raises(UsageError, match="cannot read"):
        lc.read_csv(str(tmp_path / "missing.csv"))


def test_plot_groups_draws_each_configuration_in_one_colour(runs, tmp_path):
    fig = lc.plot_groups({"a": _curves(runs), "b": _curves(runs, (1,))},
                         str(tmp_path / "g.png"), "groups",
                         references=[("target +18", 18)])
    top, fps = fig.axes
    labels = [line.get_label() for line in top.get_lines()]
    assert "a: 2 seed(s)" in labels and "a: mean and min-max" in labels
    assert "b: 1 seed(s)" in labels and "b: mean and min-max" not in labels
    assert "target +18" in labels
    colours = {line.get_label(): line.get_color() for line in top.get_lines()}
    assert colours["a: 2 seed(s)"] == colours["a: mean and min-max"]
    assert colours["a: 2 seed(s)"] != colours["b: 1 seed(s)"]
    assert len(fps.get_lines()) == 3
    assert (tmp_path / "g.png").read_bytes()[:4] == b"\x89PNG"
