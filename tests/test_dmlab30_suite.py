"""dmlab30.suite: the DMLab-30 plug-in's levels, level set, scores and
commands."""

import pytest

import dmlab30
from dmlab30 import suite
from impala_tf.envs import suites


def test_suite_scores_wait_for_all_thirty_levels():
    assert suite.suite_scores({}) == {"dmlab30_levels_with_returns": 0}
    assert suite.suite_scores({"rooms_watermaze": 30.0}) == {
        "dmlab30_levels_with_returns": 1}


def test_suite_scores_capped_and_uncapped_by_hand():
    returns = {train: dmlab30.HUMAN_SCORES[test]
               for train, test in dmlab30.LEVEL_MAPPING.items()}
    # One level at twice the human margin over random: 200% uncapped, 100%
    # capped; the other 29 at 100%.
    level = "rooms_watermaze"
    random, human = dmlab30.RANDOM_SCORES[level], dmlab30.HUMAN_SCORES[level]
    returns[level] = random + 2 * (human - random)
    scores = suite.suite_scores(returns)
    assert scores["dmlab30_levels_with_returns"] == 30
    assert scores["dmlab30_mean_capped"] == pytest.approx(100)
    assert scores["dmlab30_mean_uncapped"] == pytest.approx(
        (29 * 100 + 200) / 30)


def test_reference_returns_are_the_test_levels():
    assert suite.reference_returns("rooms_collect_good_objects_train") == {
        "random": 0.073, "human": 10.0}
    assert suite.reference_returns("dmlab/rooms_watermaze") == {
        "random": dmlab30.RANDOM_SCORES["rooms_watermaze"],
        "human": dmlab30.HUMAN_SCORES["rooms_watermaze"]}
    with pytest.raises(ValueError, match="seekavoid_arena_01"):
        suite.reference_returns("seekavoid_arena_01")


def test_levels_load_their_scripts_and_train_levels_test_on_test():
    suite.SUITE.check()
    assert suite.SUITE.name == "dmlab30"
    assert set(suite.SUITE.levels) == dmlab30.ALL_LEVELS
    assert suite.SUITE.levels["rooms_watermaze"] == suites.Level(
        "dmlab", "contributed/dmlab30/rooms_watermaze")
    assert suite.SUITE.levels["rooms_collect_good_objects_train"] == (
        suites.Level("dmlab",
                     "contributed/dmlab30/rooms_collect_good_objects_train",
                     test_level="rooms_collect_good_objects_test"))
    assert suite.SUITE.levels["rooms_collect_good_objects_test"].test_level \
        is None


def test_level_set_and_reference():
    spec = suite.SUITE.level_sets["dmlab30"]
    assert spec.kind == "dmlab" and spec.levels == dmlab30.TRAIN_LEVELS
    assert spec.defaults["total_environment_frames"] == 10_000_000_000
    assert spec.defaults["reward_clipping"] == "soft_asymmetric"
    assert spec.headline == "dmlab30_mean_capped"
    assert set(suite.SUITE.reference) == {
        "impala_table_2", "impala_table_3", "impala_table_b1"}
    assert suite.SUITE.reference["impala_table_3"]["impala_deep_pbt"] == 49.4
    assert suite.SUITE.human_normalized(
        "rooms_collect_good_objects_train", 10.0) == pytest.approx(100)


def test_report_command_resolves():
    assert set(suite.SUITE.commands) == {"report"}
    assert callable(suites.resolve_command(suite.SUITE.commands["report"]))
