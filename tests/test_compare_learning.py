"""Tests for benchmarks/compare_learning.py: configurations read from run
directories and learning-curve CSVs, merged by label, their median and
range over seeds, the files it writes and its errors, from progress files
written by the trainer's own writer (`testing.write_progress`, a full
100-game window in every record) with made-up returns."""

import json
import subprocess
import sys

import pytest

from benchmarks import compare_learning
from impala_tf import testing
from impala_tf.errors import UsageError
from impala_tf.runtime import curves
from impala_tf.runtime import sweep

FRAMES = 1_000_000  # Per record.


@pytest.fixture(scope="module")
def sources(tmp_path_factory):
    """Baseline seeds 1-2 as a CSV, seed 3 as a run directory; the lever's
    seeds 1-3 as run directories, each a million frames sooner."""
    base = tmp_path_factory.mktemp("compare")
    baseline = {1: [None, -21, -15, 0, 10, 18], 2: [None, -21, -20, -15, 0,
                                                    18],
                3: [None, -21, -21, -15, -5, 0, 18]}
    lever = {1: [None, -15, 0, 18], 2: [None, -21, -15, 0, 18],
             3: [None, -15, 0, 10]}
    for seed, returns in baseline.items():
        testing.write_progress(base / "base" / f"seed_{seed}", returns,
                               FRAMES, level="pong")
    for seed, returns in lever.items():
        testing.write_progress(base / "lever" / f"seed_{seed}", returns,
                               FRAMES, level="pong")
    curves.write_csv({s: sweep.read_curve(str(base / "base" / f"seed_{s}"))
                      for s in (1, 2)}, str(base / "base.csv"))
    return base


def test_parse_run_and_reference():
    assert compare_learning.parse_run("a=x.csv") == ("a", "x.csv", None)
    assert compare_learning.parse_run("a b=runs/x:1,3") == (
        "a b", "runs/x", ["1", "3"])
    assert compare_learning.parse_reference("target +18=18") == (
        "target +18", 18.0)
    for bad in ("x.csv", "=x.csv", "a="):
        with pytest.raises(UsageError, match="is not LABEL=SOURCE"):
            compare_learning.parse_run(bad)
    with pytest.raises(UsageError, match="comma-separated list of ints"):
        compare_learning.parse_run("a=runs/x:1,b")
    with pytest.raises(UsageError, match="is not LABEL=RETURN"):
        compare_learning.parse_reference("target=high")


def test_sources_of_one_label_merge(sources):
    groups = compare_learning.read_groups([
        ("base", str(sources / "base.csv"), None),
        ("base", str(sources / "base"), ["3"]),
        ("lever", str(sources / "lever"), ["1", "2", "3"])])
    assert list(groups) == ["base", "lever"]
    assert sorted(groups["base"]) == ["1", "2", "3"]
    # The CSV gives back the curve the run directory holds.
    direct = sweep.read_curve(str(sources / "base" / "seed_1"))
    assert [(r["env_frames"], r[curves.RETURN_KEY], r["episodes"])
            for r in groups["base"]["1"]] == [
        (r["env_frames"], r[curves.RETURN_KEY], r["episodes"])
        for r in direct]
    with pytest.raises(UsageError, match="seed 1 of 'base' comes from two"):
        compare_learning.read_groups([
            ("base", str(sources / "base.csv"), None),
            ("base", str(sources / "base"), ["1"])])


def test_median_and_range_over_seeds(sources):
    groups = compare_learning.read_groups([
        ("base", str(sources / "base.csv"), None),
        ("base", str(sources / "base"), ["3"]),
        ("lever", str(sources / "lever"), ["1", "2", "3"])])
    reports = compare_learning.compare(groups, [-15, 18])
    base = reports["base"][1]["across_seeds"]
    assert base["-15"] == {"median": 4 * FRAMES, "min": 3 * FRAMES,
                           "max": 4 * FRAMES, "reached": 3, "seeds": 3}
    assert base["+18"]["median"] == 6 * FRAMES
    lever = reports["lever"][1]["across_seeds"]
    assert lever["-15"]["median"] == 2 * FRAMES
    assert lever["+18"] == {"median": 4.5 * FRAMES, "min": 4 * FRAMES,
                            "max": 5 * FRAMES, "reached": 2, "seeds": 3}


def _run(args):
    return subprocess.run(
        [sys.executable, "-m", "benchmarks.compare_learning"] + args,
        cwd=testing.REPO, text=True, capture_output=True, timeout=300)


def test_command_line_writes_json_and_plot(sources, tmp_path):
    out = tmp_path / "cmp"
    result = _run([f"--run=base={sources / 'base.csv'}",
                   f"--run=base={sources / 'base'}:3",
                   f"--run=lever={sources / 'lever'}:1,2,3",
                   "--thresholds=-15,18", "--reference=target +18=18",
                   f"--out={out}"])
    assert result.returncode == 0, result.stderr
    text = result.stdout
    assert text.index("base:") < text.index("lever:")
    median = [l for l in text.splitlines() if l.startswith("median")]
    assert "6,000,000 (3/3)" in median[0] and "4,500,000 (2/3)" in median[1]
    report = json.loads((tmp_path / "cmp.json").read_text())
    assert report["machine"]["cpus"] >= 1
    assert [r["label"] for r in report["runs"]] == ["base", "base", "lever"]
    assert report["configurations"]["lever"]["across_seeds"]["+18"][
        "reached"] == 2
    with open(tmp_path / "cmp.png", "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("args, message", [
    (["--run=nolabel"], "is not LABEL=SOURCE"),
    (["--run=a=x:1,y"], "comma-separated list of ints"),
    (["--run=a=/nonexistent/x.csv"], "cannot read /nonexistent/x.csv"),
    (["--run=a=/nonexistent/dir:1"], "is neither a CSV nor a directory"),
    (["--run=a={base}"], "give its seeds after a colon"),
    (["--run=a={base}:9"], "does not exist; train first"),
    (["--run=a={csv}:7"], "has no rows for seed(s) 7"),
    (["--run=a={csv}", "--reference=t"], "is not LABEL=RETURN"),
])
def test_bad_input_is_one_error_and_exit_2(sources, tmp_path, args,
                                          message):
    args = [a.format(base=sources / "base", csv=sources / "base.csv")
            for a in args]
    result = _run(args + [f"--out={tmp_path / 'x'}"])
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr
