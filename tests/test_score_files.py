"""Tests for impala_tf/runtime/score_files.py: naming several score files."""

import pytest

from impala_tf import errors
from impala_tf.runtime import score_files


def test_files_lists_and_directories_each_once_in_order(tmp_path):
    a = tmp_path / "a.csv"
    a.write_text("game,score\n")
    for run in ("run_2", "run_1", "run_1/nested"):
        (tmp_path / "runs" / run).mkdir(parents=True)
        (tmp_path / "runs" / run / score_files.SCORES_FILE_NAME).write_text(
            "x")
    (tmp_path / "runs" / "run_1" / "other.csv").write_text("x")
    found = score_files.find([f"{a}, {a}", str(tmp_path / "runs"), str(a)])
    below = tmp_path / "runs"
    # Sorted by path: ".../run_1/nested/..." before ".../run_1/test_...".
    assert found == [str(a),
                     str(below / "run_1" / "nested" /
                         score_files.SCORES_FILE_NAME),
                     str(below / "run_1" / score_files.SCORES_FILE_NAME),
                     str(below / "run_2" / score_files.SCORES_FILE_NAME)]


@pytest.mark.parametrize("specs, hint, fragment", [
    (["{tmp}/missing.csv"], "", "cannot read scores file"),
    (["{tmp}"], "train first", "holds no test_scores.csv (train first)"),
    ([",", ""], "", "no scores file given"),
])
def test_bad_specs_are_one_sentence_usage_errors(tmp_path, specs, hint,
                                                 fragment):
    specs = [s.format(tmp=tmp_path) for s in specs]
    with pytest.raises(errors.UsageError, match=fragment.replace("(", r"\(")
                       .replace(")", r"\)")):
        score_files.find(specs, hint=hint)
