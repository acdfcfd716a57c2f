"""Tests for benchmarks/replay_speed.py: a real (tiny) measurement of the
replay mixer from this checkout, what it writes, and its bad input."""

import json
import subprocess
import sys

from impala_tf import testing


def _run(args):
    return subprocess.run(
        [sys.executable, "-m", "benchmarks.replay_speed"] + args,
        cwd=testing.REPO, text=True, capture_output=True, timeout=600)


def test_measures_the_mixer_of_each_source_and_writes_json(tmp_path):
    out = tmp_path / "r.json"
    result = _run(["--rounds=2", "--batches=3", "--fill=8", f"--out={out}"])
    assert result.returncode == 0, result.stderr
    report = json.loads(out.read_text())
    assert report["machine"]["cpus"] >= 1
    rows = report["results"]
    assert [r["round"] for r in rows] == [1, 2]
    for r in rows:
        # The worker imported this checkout's impala_tf.
        assert r["impala_tf"] == testing.REPO
        assert r["replayed_per_batch"] == 4
        assert 0 < r["cpu_ms_per_batch"] < 1000
        assert r["compress_cpu_ms"] > 0 and r["decompress_cpu_ms"] > 0
    assert "CPU ms/batch" in result.stdout


def test_bad_input_is_one_error_and_exit_2(tmp_path):
    result = _run([f"--sources={tmp_path}"])
    assert result.returncode == 2
    assert "is not an impala_tf checkout" in result.stderr
    assert "Traceback" not in result.stderr
    result = _run(["--batches=0"])
    assert result.returncode == 2 and "--batches must be at least 1" in (
        result.stderr)
