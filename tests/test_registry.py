"""Level names -> level sets, suite defaults and suite scores."""

import inspect

import pytest

import atari57
import dmlab30
from impala_tf.envs import registry
from impala_tf.envs.atari import AtariEnvironment


def _atari_constructor_kwargs(level_set, is_test):
    """All of AtariEnvironment's keyword arguments as `make` calls it."""
    defaults = {name: p.default for name, p in inspect.signature(
        AtariEnvironment).parameters.items()
        if p.default is not inspect.Parameter.empty and name != "seed"}
    return dict(defaults, **level_set.environment_kwargs(is_test))


def test_atari_single_game_defaults_follow_table_g1():
    ls = registry.parse_level_name("atari/pong")
    assert ls.kind == "atari" and ls.levels == ("pong",)
    d = ls.defaults
    assert (d["agent"], d["use_lstm"], d["unroll_length"], d["batch_size"],
            d["learning_rate"], d["epsilon"], d["entropy_cost"],
            d["num_action_repeats"]) == ("shallow", False, 20, 32, 0.0006,
                                         0.01, 0.01, 4)
    assert d["total_environment_frames"] == 200_000_000
    assert d["max_grad_norm"] == 40.0
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
    assert d["max_grad_norm"] == 0.0  # The release clips no gradient.
    multi = registry.parse_level_name("dmlab30")
    assert len(multi.levels) == 30
    assert multi.defaults["reward_clipping"] == "soft_asymmetric"
    assert multi.defaults["max_grad_norm"] == 0.0
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


@pytest.mark.parametrize("name,multitask", [("atari/pong", False),
                                            ("atari57", True)])
def test_atari_environments_follow_the_papers_protocols(name, multitask):
    ls = registry.parse_level_name(name)
    assert _atari_constructor_kwargs(ls, False) == (
        atari57.training_env_kwargs(full_action_space=multitask))
    assert _atari_constructor_kwargs(ls, True) == (
        atari57.evaluation_env_kwargs(full_action_space=multitask))
    options = registry.parse_level_name(name, sticky_action_prob=0.25)
    assert options.environment_kwargs(True)["sticky_action_prob"] == 0.25


def test_dmlab_single_train_level_is_tested_on_its_test_level():
    ls = registry.parse_level_name("dmlab/rooms_collect_good_objects_train")
    assert ls.test_level("rooms_collect_good_objects_train") == (
        "rooms_collect_good_objects_test")
    assert ls.environment_kwargs(True) == {"is_test": True}
    other = registry.parse_level_name("dmlab/seekavoid_arena_01")
    assert other.test_level("seekavoid_arena_01") == "seekavoid_arena_01"
    assert other.human_normalized("seekavoid_arena_01", 1.0) is None
    assert other.reference_returns("seekavoid_arena_01") == {}


def test_reference_returns_are_the_suites_random_and_human_scores():
    ls = registry.parse_level_name("atari/breakout")
    assert ls.reference_returns("breakout") == {"random": 1.7, "human": 30.5}
    train = registry.parse_level_name("dmlab/rooms_collect_good_objects_train")
    got = train.reference_returns("rooms_collect_good_objects_train")
    level = "rooms_collect_good_objects_test"  # Scored on its test level.
    assert got == {"random": dmlab30.RANDOM_SCORES[level],
                   "human": dmlab30.HUMAN_SCORES[level]}
    toy = registry.parse_level_name("impala_tf.envs.toy:colour_choice")
    assert toy.reference_returns(toy.levels[0]) == {}


def test_headline_score_is_the_level_sets_own():
    ls = registry.parse_level_name("atari57")
    g = atari57.GAMES
    assert ls.headline_score({"pong": g["pong"].human}) == pytest.approx(100)
    lab = registry.parse_level_name("dmlab30")
    assert lab.headline_score({lab.levels[0]: 1.0}) is None  # 29 missing.
    assert registry.parse_level_name("atari/pong").headline_score(
        {"pong": 1.0}) is None
