"""Tests for impala_tf.runtime.runs: a run directory refuses a config it does
not hold in one sentence, and repairs a half-written progress line."""

import pytest

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
