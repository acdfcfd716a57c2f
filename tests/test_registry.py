"""Level names -> level sets, suite defaults and suite scores."""

import pytest

import atari57
import dmlab30
from impala_tf.envs import registry


def test_atari_single_game_defaults_follow_table_g1():
    ls = registry.parse_level_name("atari/pong")
    assert ls.kind == "atari" and ls.levels == ("pong",)
    d = ls.defaults
    assert (d["agent"], d["use_lstm"], d["unroll_length"], d["batch_size"],
            d["learning_rate"], d["epsilon"], d["entropy_cost"],
            d["num_action_repeats"]) == ("shallow", False, 20, 32, 0.0006,
                                         0.01, 0.01, 4)
    assert d["total_environment_frames"] == 200_000_000
    assert ls.score_column == "game"


def test_atari57_covers_every_game_with_a_fixed_number_per_game():
    ls = registry.parse_level_name("atari57")
    assert ls.is_multitask and len(ls.levels) == 57
    assert ls.defaults["agent"] == "deep"
    for num_envs in (57, 114):
        assigned = [ls.levels[ls.level_for(i)] for i in range(num_envs)]
        assert assigned == atari57.assign_games(num_envs)
        assert all(assigned.count(g) == num_envs // 57
                   for g in atari57.ALL_GAMES)


def test_atari57_env_uses_full_action_set():
    ls = registry.parse_level_name("atari57")
    env = ls.make(ls.levels.index("pong"), seed=0)
    try:
        assert env.action_spec().num_values == 18
    finally:
        env.close()


def test_dmlab_names_and_defaults():
    ls = registry.parse_level_name("rooms_watermaze")
    assert ls.kind == "dmlab" and ls.levels == ("rooms_watermaze",)
    assert registry.parse_level_name("dmlab/rooms_watermaze").levels == (
        "rooms_watermaze",)
    d = ls.defaults
    assert (d["agent"], d["use_lstm"], d["unroll_length"],
            d["learning_rate"], d["epsilon"], d["entropy_cost"]) == (
                "deep", True, 100, 0.00048, 0.1, 0.00025)
    multi = registry.parse_level_name("dmlab30")
    assert len(multi.levels) == 30
    assert multi.defaults["reward_clipping"] == "soft_asymmetric"
    assert multi.test_level("rooms_collect_good_objects_train") == (
        "rooms_collect_good_objects_test")
    covered = {multi.levels[multi.level_for(i)] for i in range(30)}
    assert covered == set(dmlab30.TRAIN_LEVELS)


def test_dmlab30_running_score_needs_every_level():
    ls = registry.parse_level_name("dmlab30")
    partial = {ls.levels[0]: 1.0}
    assert "dmlab30_mean_capped" not in ls.suite_scores(partial)
    human = {lvl.test_name: lvl.human_score for lvl in dmlab30.LEVELS}
    means = {train: human[dmlab30.LEVEL_MAPPING.get(train, train)]
             for train in ls.levels}
    scores = ls.suite_scores(means)
    assert scores["dmlab30_mean_capped"] == pytest.approx(100.0)
    assert scores["dmlab30_mean_uncapped"] == pytest.approx(100.0)


def test_atari57_running_median():
    ls = registry.parse_level_name("atari57")
    g = atari57.GAMES
    means = {"pong": g["pong"].human, "breakout": g["breakout"].random,
             "alien": (g["alien"].human + g["alien"].random) / 2}
    s = ls.suite_scores(means)
    assert s["atari57_median_human_normalized"] == pytest.approx(50.0)
    assert s["atari57_games_with_returns"] == 3


def test_custom_callable_receives_seed_and_is_test():
    ls = registry.parse_level_name("impala_tf.envs.toy:colour_choice")
    assert ls.kind == "custom"
    env = ls.make(0, seed=3, is_test=True)
    assert env.action_spec().num_values == 2


@pytest.mark.parametrize("name,fragment", [
    ("atari/pongg", "did you mean 'pong'"),
    ("", "empty"),
    ("dmlab/", "names no level"),
    ("a:b:c", "malformed"),
    (":make", "malformed"),
    ("no_such_module_zz:make", "cannot import module"),
    ("impala_tf.envs.toy:no_such_function", "has no callable"),
    ("spaceinvaders", "unknown level"),
])
def test_bad_level_names(name, fragment):
    with pytest.raises(registry.LevelError, match=fragment):
        registry.parse_level_name(name)
