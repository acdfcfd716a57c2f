"""dmlab30.levels: the 30 levels, their reference scores and the paper's
tables as data."""

import csv
import os

import pytest

import dmlab30
from dmlab30 import levels

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED_REFERENCE = os.path.join(
    os.path.dirname(REPO_ROOT), "shared", "reference")


def test_thirty_levels_and_mapping():
    assert len(levels.LEVELS) == 30
    assert len(dmlab30.TEST_LEVELS) == len(set(dmlab30.TEST_LEVELS)) == 30
    assert len(dmlab30.ALL_LEVELS) == 32
    assert dmlab30.LEVEL_MAPPING["rooms_collect_good_objects_train"] == (
        "rooms_collect_good_objects_test")
    assert dmlab30.LEVEL_MAPPING["rooms_exploit_deferred_effects_train"] == (
        "rooms_exploit_deferred_effects_test")
    changed = {k: v for k, v in dmlab30.LEVEL_MAPPING.items() if k != v}
    assert len(changed) == 2
    assert set(dmlab30.HUMAN_SCORES) == set(dmlab30.TEST_LEVELS)
    assert set(levels.PAPER_TABLE_B1["impala_deep_pbt"]) == set(
        dmlab30.TEST_LEVELS)
    assert dmlab30.LANGUAGE_LEVELS == {
        "language_select_described_object", "language_select_located_object",
        "language_execute_random_task",
        "language_answer_quantitative_question"}


@pytest.mark.skipif(not os.path.isdir(SHARED_REFERENCE),
                    reason="shared reference CSVs not present")
def test_embedded_numbers_match_reference_csvs():
    with open(os.path.join(SHARED_REFERENCE, "dmlab30_levels.csv")) as f:
        rows = list(csv.DictReader(f))
    assert [r["test_level"] for r in rows] == list(dmlab30.TEST_LEVELS)
    for r in rows:
        assert dmlab30.LEVEL_MAPPING[r["train_level"]] == r["test_level"]
        assert dmlab30.RANDOM_SCORES[r["test_level"]] == float(
            r["random_score"])
        assert dmlab30.HUMAN_SCORES[r["test_level"]] == float(r["human_score"])
    with open(os.path.join(SHARED_REFERENCE,
                           "impala_paper_dmlab30_table_b1.csv")) as f:
        rows = list(csv.DictReader(f))
    for r in rows:
        for column in levels.PAPER_TABLE_B1_COLUMNS:
            assert levels.PAPER_TABLE_B1[column][r["test_level"]] == float(
                r[column])


def test_level_rows_are_consistent():
    assert levels.LEVELS[0] == levels.Level(
        "rooms_collect_good_objects_train", "rooms_collect_good_objects_test",
        0.073, 10.0)
    assert list(levels.LEVEL_MAPPING) == list(levels.TRAIN_LEVELS)
    assert levels.ALL_LEVELS == set(levels.TRAIN_LEVELS) | set(
        levels.TEST_LEVELS)
    for level in levels.LEVELS:
        assert level.human_score > level.random_score, level
    for column in levels.PAPER_TABLE_B1_COLUMNS:
        assert list(levels.PAPER_TABLE_B1[column]) == list(levels.TEST_LEVELS)


def test_table_2_has_every_correction_with_and_without_replay():
    # Four of Table 2's tasks are DMLab-30 levels; seekavoid_arena_01 is not.
    assert [name for name in levels.PAPER_TABLE_2_LEVELS
            if name not in levels.ALL_LEVELS] == ["seekavoid_arena_01"]
    assert set(levels.PAPER_TABLE_2) == {
        (correction, replay)
        for correction in levels.PAPER_TABLE_2_CORRECTIONS
        for replay in (False, True)}
    for returns in levels.PAPER_TABLE_2.values():
        assert tuple(returns) == levels.PAPER_TABLE_2_LEVELS


def test_table_3_columns():
    assert levels.PAPER_TABLE_3["impala_experts_deep"] == 44.5
    assert levels.PAPER_TABLE_3["impala_deep_pbt"] == 49.4
    assert set(levels.PAPER_TABLE_B1_COLUMNS) <= set(levels.PAPER_TABLE_3)
