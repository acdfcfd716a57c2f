"""The Atari-57 suite: game names, ALE ROM ids and reference scores.

Everything here is plain data and works without ``../shared`` and without
ALE installed.

Game names are snake_case (``pong``, ``space_invaders``) and, for all 57
games, equal to ale-py's ROM ids (``ale_py.roms.get_rom_path(name)``); the
gymnasium id is ``ALE/<CamelCase>-v5`` (``ALE/SpaceInvaders-v5``).

Sources of the numbers embedded below
-------------------------------------
* ``random`` and ``human``: the DQN-lineage reference scores used for
    human-normalised Atari-57 results -- the random-agent scores of Mnih et al.
    2015 ("Human-level control through deep reinforcement learning", Nature,
    Extended Data Table 2) and the human scores as re-tabulated for 57 games by
    van Hasselt, Guez & Silver 2016 ("Deep Reinforcement Learning with Double
    Q-learning", AAAI) and Wang et al. 2016 ("Dueling Network Architectures for
    Deep Reinforcement Learning", ICML), which also added the eight games
    missing from the Nature set (berzerk, defender, phoenix, pitfall, skiing,
    solaris, surround, yars_revenge). Note these human scores are not the
    Nature-paper ones for every game (e.g. Pong: 14.6 here, 9.3 in Mnih et al.
    2015). Copied from ``shared/reference/atari57_scores.csv``; with them the
    IMPALA paper's Table 4 medians reproduce exactly from its Table C.1.
* ``shallow_experts``, ``deep_experts``, ``deep_multitask``: IMPALA paper
    (Espeholt et al. 2018, arXiv 1802.01561), Appendix C, Table C.1 -- final
    raw scores of IMPALA shallow single-game experts, deep single-game experts
    and the deep multi-task agent (one agent for all 57 games). Copied from
    ``shared/reference/impala_paper_atari_table_c1.csv``.
* ``PAPER_MEDIANS``: Table 4 (median human-normalised score, %). The paper's
    means are not reproduced here: they do not follow from these reference
    scores (the paper used other reference scores for means).
"""

import dataclasses
import difflib
import math
from typing import Dict, Tuple

__all__ = [
    "ALL_GAMES", "GAMES", "Game", "PAPER_COLUMNS", "PAPER_COLUMN_LABELS",
    "PAPER_MEDIANS", "check_game", "game_to_ale_id", "game_to_gym_id",
    "get_game", "human_normalized_score", "paper_score",
]


@dataclasses.dataclass(frozen=True)
class Game:
    """One Atari-57 game and its reference scores (raw game points)."""
    name: str               # snake_case, e.g. "space_invaders".
    random: float           # Random-agent score.
    human: float            # Human score.
    shallow_experts: float  # IMPALA Table C.1, shallow experts.
    deep_experts: float     # IMPALA Table C.1, deep experts.
    deep_multitask: float   # IMPALA Table C.1, deep multi-task agent.

    @property
    def ale_id(self) -> str:
        """ale-py ROM id (``ale_py.roms.get_rom_path(ale_id)``)."""
        return self.name

    @property
    def gym_id(self) -> str:
        """Gymnasium id, e.g. ``ALE/SpaceInvaders-v5``."""
        camel = "".join(p.capitalize() for p in self.name.split("_"))
        return f"ALE/{camel}-v5"


# (name, random, human, shallow experts, deep experts, deep multi-task).
_TABLE = (
    ('alien', 227.8, 7127.7, 1536.05, 15962.1, 2344.6),
    ('amidar', 5.8, 1719.5, 497.62, 1554.79, 136.82),
    ('assault', 222.4, 742.0, 12086.86, 19148.47, 2116.32),
    ('asterix', 210.0, 8503.3, 29692.5, 300732.0, 2609.0),
    ('asteroids', 719.1, 47388.7, 3508.1, 108590.05, 2011.05),
    ('atlantis', 12850.0, 29028.1, 773355.5, 849967.5, 460430.5),
    ('bank_heist', 14.2, 753.1, 1200.35, 1223.15, 55.15),
    ('battle_zone', 2360.0, 37187.5, 13015.0, 20885.0, 7705.0),
    ('beam_rider', 363.9, 16926.5, 8219.92, 32463.47, 698.36),
    ('berzerk', 123.7, 2630.4, 888.3, 1852.7, 647.8),
    ('bowling', 23.1, 160.7, 35.73, 59.92, 31.06),
    ('boxing', 0.1, 12.1, 96.3, 99.96, 96.63),
    ('breakout', 1.7, 30.5, 640.43, 787.34, 35.67),
    ('centipede', 2090.9, 12017.0, 5528.13, 11049.75, 4916.84),
    ('chopper_command', 811.0, 7387.8, 5012.0, 28255.0, 5036.0),
    ('crazy_climber', 10780.5, 35829.4, 136211.5, 136950.0, 115384.0),
    ('defender', 2874.5, 18688.9, 58718.25, 185203.0, 16667.5),
    ('demon_attack', 152.1, 1971.0, 107264.73, 132826.98, 10095.2),
    ('double_dunk', -18.6, -16.4, -0.35, -0.33, -1.92),
    ('enduro', 0.0, 860.5, 0.0, 0.0, 971.28),
    ('fishing_derby', -91.7, -38.7, 32.08, 44.85, 35.27),
    ('freeway', 0.0, 29.6, 0.0, 0.0, 21.41),
    ('frostbite', 65.2, 4334.7, 269.65, 317.75, 2744.15),
    ('gopher', 257.6, 2412.5, 1002.4, 66782.3, 913.5),
    ('gravitar', 173.0, 3351.4, 211.5, 359.5, 282.5),
    ('hero', 1027.0, 30826.4, 33853.15, 33730.55, 18818.9),
    ('ice_hockey', -11.2, 0.9, -5.25, 3.48, -13.55),
    ('jamesbond', 29.0, 302.8, 440.0, 601.5, 284.0),
    ('kangaroo', 52.0, 3035.0, 47.0, 1632.0, 8240.5),
    ('krull', 1598.0, 2665.5, 9247.6, 8147.4, 10807.8),
    ('kung_fu_master', 258.5, 22736.3, 42259.0, 43375.5, 41905.0),
    ('montezuma_revenge', 0.0, 4753.3, 0.0, 0.0, 0.0),
    ('ms_pacman', 307.3, 6951.6, 6501.71, 7342.32, 3415.05),
    ('name_this_game', 2292.3, 8049.0, 6049.55, 21537.2, 5719.3),
    ('phoenix', 761.4, 7242.6, 33068.15, 210996.45, 7486.5),
    ('pitfall', -229.4, 6463.7, -11.14, -1.66, -1.22),
    ('pong', -20.7, 14.6, 20.4, 20.98, 8.58),
    ('private_eye', 24.9, 69571.3, 92.42, 98.5, 0.0),
    ('qbert', 163.9, 13455.0, 18901.25, 351200.12, 10717.38),
    ('riverraid', 1338.5, 17118.0, 17401.9, 29608.05, 2850.15),
    ('road_runner', 11.5, 7845.0, 37505.0, 57121.0, 24435.5),
    ('robotank', 2.2, 11.9, 2.3, 12.96, 9.94),
    ('seaquest', 68.4, 42054.7, 1716.9, 1753.2, 844.6),
    ('skiing', -17098.1, -4336.9, -29975.0, -10180.38, -8988.0),
    ('solaris', 1236.3, 12326.7, 2368.4, 2365.0, 1160.4),
    ('space_invaders', 148.0, 1668.7, 1726.28, 43595.78, 199.65),
    ('star_gunner', 664.0, 10250.0, 69139.0, 200625.0, 1855.5),
    ('surround', -10.0, 6.5, -8.13, 7.56, -8.51),
    ('tennis', -23.8, -8.3, -1.89, 0.55, -8.12),
    ('time_pilot', 3568.0, 5229.2, 6617.5, 48481.5, 3747.5),
    ('tutankham', 11.4, 167.6, 267.82, 292.11, 105.22),
    ('up_n_down', 533.4, 11693.2, 273058.1, 332546.75, 82155.3),
    ('venture', 0.0, 1187.5, 0.0, 0.0, 1.0),
    ('video_pinball', 16256.9, 17667.9, 228642.52, 572898.27, 20125.14),
    ('wizard_of_wor', 563.5, 4756.5, 4203.0, 9157.5, 2106.0),
    ('yars_revenge', 3092.9, 54576.9, 80530.13, 84231.14, 14739.41),
    ('zaxxon', 32.5, 9173.3, 1148.5, 32935.5, 6497.0),
)

GAMES: Dict[str, Game] = {row[0]: Game(*row) for row in _TABLE}
ALL_GAMES: Tuple[str, ...] = tuple(GAMES)  # The 57 names, alphabetical.
assert len(ALL_GAMES) == 57

# Table C.1 columns, in the paper's order, and how reports label them.
PAPER_COLUMNS: Tuple[str, ...] = (
    "shallow_experts", "deep_experts", "deep_multitask")
PAPER_COLUMN_LABELS: Dict[str, str] = {
    "shallow_experts": "IMPALA shallow experts",
    "deep_experts": "IMPALA deep experts",
    "deep_multitask": "IMPALA deep multi-task",
}
# Table 4: median human-normalised score (%) over the 57 games.
PAPER_MEDIANS: Dict[str, float] = {
    "shallow_experts": 93.2,
    "deep_experts": 191.8,
    "deep_multitask": 59.7,
}


def check_game(game: str) -> str:
    """Returns ``game`` if it is one of the 57, else raises ValueError."""
    if game in GAMES:
        return game
    hint = "."
    if isinstance(game, str):
        guess = game.strip()
        if guess.startswith("ALE/"):
            guess = guess[4:].split("-v")[0]
        # CamelCase / "Space Invaders" / "space-invaders" -> snake_case.
        snake = "".join("_" + c.lower() if c.isupper() else c for c in guess)
        snake = snake.replace("-", "_").replace(" ", "_").strip("_")
        while "__" in snake:
            snake = snake.replace("__", "_")
        if snake in GAMES:
            close = [snake]
        else:
            close = difflib.get_close_matches(snake, ALL_GAMES, n=3, cutoff=0.6)
        if close:
            hint = "; did you mean " + " or ".join(repr(c) for c in close) + "?"
    raise ValueError(
        f"unknown Atari game {game!r}; game names are the 57 snake_case "
        f"names in atari57.ALL_GAMES (e.g. 'pong', 'space_invaders'){hint}")


def get_game(game: str) -> Game:
    """The :class:`Game` record of a snake_case name (ValueError if unknown)."""
    return GAMES[check_game(game)]


def game_to_ale_id(game: str) -> str:
    """ale-py ROM id for a game (identical to the snake_case name)."""
    return get_game(game).ale_id


def game_to_gym_id(game: str) -> str:
    """Gymnasium id for a game, e.g. ``ALE/Pong-v5``."""
    return get_game(game).gym_id


def human_normalized_score(game: str, score: float) -> float:
    """Human-normalised score in %: 100 (score - random) / (human - random).

    0% is the random agent and 100% the human reference of this module.
    """
    g = get_game(game)
    score = float(score)
    if not math.isfinite(score):
        raise ValueError(
            f"score for {game!r} is not a finite number: {score!r}")
    return 100.0 * (score - g.random) / (g.human - g.random)


def paper_score(game: str, column: str) -> float:
    """Raw IMPALA Table C.1 score of ``game`` in ``column`` (PAPER_COLUMNS)."""
    if column not in PAPER_COLUMNS:
        raise ValueError(
            f"unknown paper column {column!r}; one of {PAPER_COLUMNS}")
    return getattr(get_game(game), column)
