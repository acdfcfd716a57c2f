"""atari57.games: the 57 names, their ids and reference scores."""

import csv
import math
import pathlib

import pytest

import atari57
from atari57 import games

REPO = pathlib.Path(__file__).resolve().parents[1]
SHARED_REFERENCE = REPO.parent / "shared" / "reference"


def test_games_table():
    assert len(atari57.ALL_GAMES) == 57
    assert list(atari57.ALL_GAMES) == sorted(atari57.ALL_GAMES)
    assert atari57.game_to_ale_id("space_invaders") == "space_invaders"
    assert atari57.game_to_gym_id("space_invaders") == "ALE/SpaceInvaders-v5"
    assert atari57.game_to_gym_id("montezuma_revenge") == (
        "ALE/MontezumaRevenge-v5")
    assert atari57.human_normalized_score("pong", -20.7) == pytest.approx(0)
    assert atari57.human_normalized_score("pong", 14.6) == pytest.approx(100)
    with pytest.raises(ValueError, match=r"^unknown Atari game 'pongg'; .*"
                                         r"did you mean 'pong'"):
        atari57.human_normalized_score("pongg", 1.0)


@pytest.mark.skipif(not SHARED_REFERENCE.is_dir(),
                    reason="shared/reference not present")
def test_embedded_numbers_match_the_reference_csvs():
    with open(SHARED_REFERENCE / "atari57_scores.csv") as f:
        ref = {r["game"]: r for r in csv.DictReader(f)}
    with open(SHARED_REFERENCE / "impala_paper_atari_table_c1.csv") as f:
        c1 = {r["game"]: r for r in csv.DictReader(f)}
    assert tuple(ref) == atari57.ALL_GAMES == tuple(c1)
    for game, info in atari57.GAMES.items():
        assert info.random == float(ref[game]["random_score"])
        assert info.human == float(ref[game]["human_score"])
        for column in atari57.PAPER_COLUMNS:
            assert getattr(info, column) == float(c1[game][f"impala_{column}"])


def test_every_ale_id_is_a_rom_ale_py_ships():
    roms = pytest.importorskip("ale_py.roms")
    assert [g for g in atari57.ALL_GAMES
            if roms.get_rom_path(games.game_to_ale_id(g)) is None] == []


@pytest.mark.parametrize("spelling", [
    "SpaceInvaders", "ALE/SpaceInvaders-v5", "space-invaders",
    "Space Invaders"])
def test_check_game_suggests_the_snake_case_name(spelling):
    assert games.check_game("space_invaders") == "space_invaders"
    with pytest.raises(ValueError, match=r"did you mean 'space_invaders'\?$"):
        games.check_game(spelling)
    with pytest.raises(ValueError, match=r"\(e\.g\. 'pong', "
                                         r"'space_invaders'\)\.$"):
        games.check_game("xyzzy")


def test_human_normalized_score_is_linear_and_finite():
    # breakout: random 1.7, human 30.5 -> 100 * (16.1 - 1.7) / 28.8 = 50.
    assert games.get_game("breakout").random == 1.7
    assert games.get_game("breakout").human == 30.5
    assert games.human_normalized_score("breakout", 16.1) == pytest.approx(50)
    for bad in (math.nan, math.inf):
        with pytest.raises(ValueError, match="not a finite number"):
            games.human_normalized_score("breakout", bad)


def test_paper_score_reads_table_c1():
    assert games.paper_score("breakout", "deep_experts") == (
        games.GAMES["breakout"].deep_experts)
    assert games.paper_score("pong", "shallow_experts") == (
        games.GAMES["pong"].shallow_experts)
    with pytest.raises(ValueError, match="unknown paper column 'median'"):
        games.paper_score("pong", "median")
    with pytest.raises(ValueError, match="unknown Atari game"):
        games.paper_score("pongg", "deep_experts")
