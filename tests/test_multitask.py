"""atari57.multitask: actors to games, and the multi-task env settings."""

import pytest

import atari57
from atari57 import evaluation
from atari57 import multitask


@pytest.mark.parametrize("num_actors,per_game", [(57, 1), (114, 2)])
def test_assign_games_covers_every_game(num_actors, per_game):
    assigned = atari57.assign_games(num_actors)
    assert len(assigned) == num_actors
    assert assigned[:3] == ["alien", "amidar", "assault"]
    assert set(assigned) == set(atari57.ALL_GAMES)
    counts = atari57.actors_per_game(num_actors)
    assert set(counts.values()) == {per_game}
    assert atari57.assign_games(num_actors, strict=True) == assigned


def test_assign_games_uneven_and_custom():
    counts = atari57.actors_per_game(60)
    assert sum(counts.values()) == 60
    assert [counts[g] for g in atari57.ALL_GAMES[:4]] == [2, 2, 2, 1]
    assert sum(v == 0 for v in atari57.actors_per_game(10).values()) == 47
    with pytest.raises(ValueError, match="not a multiple of 57"):
        atari57.assign_games(60, strict=True)
    assert atari57.assign_games(5, games=["pong", "breakout"]) == [
        "pong", "breakout", "pong", "breakout", "pong"]
    with pytest.raises(ValueError):
        atari57.assign_games(0)
    with pytest.raises(ValueError, match="unknown Atari game"):
        atari57.assign_games(2, games=["pong", "pongg"])


@pytest.mark.parametrize("games,num_actors,message", [
    ([], 1, "games must not be empty"),
    (["pong", "pong"], 2, "must not contain duplicates"),
    (["pong"], 1.5, "num_actors must be an integer"),
    (["pong"], True, "num_actors must be an integer"),
])
def test_assign_games_rejects_bad_input(games, num_actors, message):
    with pytest.raises(ValueError, match=message):
        multitask.assign_games(num_actors, games=games)


def test_multitask_env_kwargs():
    train = atari57.multitask_env_kwargs("train")
    test = atari57.multitask_env_kwargs("test")
    assert train["full_action_space"] and test["full_action_space"]
    assert train["terminal_on_life_loss"] and not test["terminal_on_life_loss"]
    # Otherwise the paper's single-game protocols, with 18 actions.
    assert train == evaluation.training_env_kwargs(full_action_space=True)
    assert test == evaluation.evaluation_env_kwargs(full_action_space=True)
    with pytest.raises(ValueError, match="mode must be 'train' or 'test'"):
        multitask.multitask_env_kwargs("eval")
