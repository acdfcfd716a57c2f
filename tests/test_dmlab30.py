"""The dmlab30 package: the human-normalised DMLab-30 score."""

import pytest

import dmlab30
from dmlab30 import levels


def _table_b1(column):
    return dict(levels.PAPER_TABLE_B1[column])


@pytest.mark.parametrize("column", ["impala_experts_deep", "impala_deep_pbt"])
def test_table_b1_reproduces_table_3_mean_capped(column):
    score = dmlab30.compute_human_normalized_score(_table_b1(column))
    assert score == pytest.approx(levels.PAPER_TABLE_3[column], abs=0.1)
    # The exact values from Table B.1's rounded raw scores.
    expected = {"impala_experts_deep": 44.449, "impala_deep_pbt": 49.359}
    assert score == pytest.approx(expected[column], abs=1e-3)


def test_cap_and_uncapped():
    returns = _table_b1("impala_deep_pbt")
    uncapped = dmlab30.compute_human_normalized_score(returns, None)
    assert uncapped == pytest.approx(52.786, abs=1e-3)
    assert uncapped > dmlab30.compute_human_normalized_score(returns, 100)
    human = dict(dmlab30.HUMAN_SCORES)
    assert dmlab30.compute_human_normalized_score(human) == pytest.approx(100)
    random = dict(dmlab30.RANDOM_SCORES)
    assert dmlab30.compute_human_normalized_score(random) == pytest.approx(
        0, abs=1e-9)


def test_train_names_count_as_test_names_and_sequences_are_averaged():
    returns = _table_b1("impala_experts_deep")
    expected = dmlab30.compute_human_normalized_score(returns)
    for train, test in dmlab30.LEVEL_MAPPING.items():
        returns[train] = returns.pop(test)
    assert dmlab30.compute_human_normalized_score(returns) == pytest.approx(
        expected)
    value = returns["rooms_watermaze"]
    returns["rooms_watermaze"] = [value - 1.0, value + 1.0]
    assert dmlab30.compute_human_normalized_score(returns) == pytest.approx(
        expected)


def test_missing_unknown_and_duplicate_levels_raise():
    returns = _table_b1("impala_experts_deep")
    del returns["psychlab_visual_search"]
    with pytest.raises(ValueError, match="psychlab_visual_search"):
        dmlab30.compute_human_normalized_score(returns)
    returns = _table_b1("impala_experts_deep")
    returns["pong"] = 1.0
    with pytest.raises(ValueError, match="pong"):
        dmlab30.compute_human_normalized_score(returns)
    returns = _table_b1("impala_experts_deep")
    returns["rooms_collect_good_objects_train"] = 3.0
    with pytest.raises(ValueError, match="rooms_collect_good_objects_test"):
        dmlab30.compute_human_normalized_score(returns)
    returns = _table_b1("impala_experts_deep")
    returns["rooms_watermaze"] = []
    with pytest.raises(ValueError, match="rooms_watermaze"):
        dmlab30.compute_human_normalized_score(returns)


def test_to_test_level_prefixes():
    assert dmlab30.to_test_level("dmlab/rooms_watermaze") == "rooms_watermaze"
    assert dmlab30.to_test_level(
        "contributed/dmlab30/rooms_collect_good_objects_train") == (
            "rooms_collect_good_objects_test")
    with pytest.raises(ValueError, match="seekavoid_arena_01"):
        dmlab30.to_test_level("seekavoid_arena_01")
