"""atari57.suite: the Atari-57 plug-in's levels, level set, scores and
commands."""

import pytest

import atari57
from atari57 import suite
from impala_tf.envs import suites


def test_suite_scores_median_and_mean_by_hand():
    assert suite.suite_scores({}) == {}
    # pong: random -20.7, human 14.6 (range 35.3): 49.9 is 200%.
    # breakout: random 1.7, human 30.5: 16.1 is 50%. alien at random: 0%.
    scores = suite.suite_scores({"pong": 49.9, "breakout": 16.1,
                                 "alien": atari57.GAMES["alien"].random})
    assert scores["atari57_games_with_returns"] == 3
    assert scores["atari57_median_human_normalized"] == pytest.approx(50)
    assert scores["atari57_mean_human_normalized"] == pytest.approx(250 / 3)
    with pytest.raises(ValueError, match="unknown Atari game"):
        suite.suite_scores({"pongg": 1.0})


def test_reference_returns():
    assert suite.reference_returns("pong") == {"random": -20.7, "human": 14.6}
    with pytest.raises(ValueError, match="unknown Atari game"):
        suite.reference_returns("pongg")


def test_suite_levels_and_level_set():
    suite.SUITE.check()
    assert suite.SUITE.name == "atari57"
    assert len(suite.SUITE.levels) == 57
    assert suite.SUITE.levels["space_invaders"] == suites.Level(
        "atari", "space_invaders")
    spec = suite.SUITE.level_sets["atari57"]
    assert spec.kind == "atari" and spec.levels == atari57.ALL_GAMES
    assert spec.defaults == {"agent": "deep"}
    assert spec.env_kwargs == atari57.multitask_env_kwargs("train")
    assert spec.test_env_kwargs == atari57.multitask_env_kwargs("test")
    assert spec.headline in spec.scores({"pong": 0.0})
    assert suite.SUITE.human_normalized("pong", 14.6) == pytest.approx(100)


def test_reference_tables():
    c1 = suite.SUITE.reference["impala_table_c1"]
    assert set(c1) == set(atari57.PAPER_COLUMNS)
    assert c1["deep_experts"]["breakout"] == (
        atari57.GAMES["breakout"].deep_experts)
    assert suite.SUITE.reference["impala_table_4_median"] == {
        "shallow_experts": 93.2, "deep_experts": 191.8,
        "deep_multitask": 59.7}


def test_commands_resolve_to_functions():
    assert set(suite.SUITE.commands) == {"report", "evaluate"}
    for target in suite.SUITE.commands.values():
        assert callable(suites.resolve_command(target))
