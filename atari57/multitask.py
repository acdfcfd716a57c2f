"""Multi-task Atari-57: which actor plays which game, and env settings.

The IMPALA multi-task agent is one network trained on all 57 games at once;
each actor plays one fixed game, and the network uses the full 18-action set
(so every game shares one policy head) and is not told which game it plays.

:func:`assign_games` is round-robin: actor ``i`` plays ``games[i % N]``
(``N = len(games)``, 57 by default). A fixed, equal number of actors per
game therefore requires ``num_actors`` to be a multiple of ``N`` (e.g. 57,
114, 171). Otherwise the first ``num_actors % N`` games (in ``games`` order,
alphabetical for ``ALL_GAMES``) get one actor more than the others, and with
``num_actors < N`` the last ``N - num_actors`` games get no actor at all and
are never trained on. Pass ``strict=True`` to make that an error.
"""

import collections
from typing import Any, Dict, List, Sequence

from atari57 import evaluation
from atari57 import games as games_lib

__all__ = ["actors_per_game", "assign_games", "multitask_env_kwargs",
           "MULTITASK_FULL_ACTION_SPACE"]

# The multi-task agent acts in the full 18-action set of the Atari 2600.
MULTITASK_FULL_ACTION_SPACE = True


def assign_games(num_actors: int,
                 games: Sequence[str] = games_lib.ALL_GAMES,
                 strict: bool = False) -> List[str]:
    """The game of each actor: ``[games[i % len(games)] for i in ...]``.

    Args:
      num_actors: number of actors (> 0).
      games: snake_case game names (default: all 57), each at most once.
      strict: if True, raise ValueError unless every game gets the same
        number of actors (``num_actors`` a multiple of ``len(games)``).

    Returns:
      A list of ``num_actors`` game names; actor ``i`` plays element ``i``.
    """
    games = list(games)
    if not games:
        raise ValueError("games must not be empty")
    for game in games:
        games_lib.check_game(game)
    if len(set(games)) != len(games):
        raise ValueError("games must not contain duplicates")
    if isinstance(num_actors, bool) or int(num_actors) != num_actors:
        raise ValueError(f"num_actors must be an integer, got {num_actors!r}")
    num_actors = int(num_actors)
    if num_actors < 1:
        raise ValueError(f"num_actors must be >= 1, got {num_actors}")
    if strict and num_actors % len(games):
        raise ValueError(
            f"num_actors={num_actors} is not a multiple of {len(games)} "
            f"games: games would get unequal numbers of actors (use a "
            f"multiple of {len(games)}, or strict=False)")
    return [games[i % len(games)] for i in range(num_actors)]


def actors_per_game(num_actors: int,
                    games: Sequence[str] = games_lib.ALL_GAMES
                    ) -> Dict[str, int]:
    """How many actors each game gets under :func:`assign_games` (0 too)."""
    counts = collections.Counter(assign_games(num_actors, games))
    return {game: counts.get(game, 0) for game in games}


def multitask_env_kwargs(mode: str = "train") -> Dict[str, Any]:
    """AtariEnvironment kwargs for the multi-task agent (full 18 actions).

    ``mode`` is ``"train"`` (life loss ends an episode) or ``"test"`` (the
    paper's evaluation protocol, see :mod:`atari57.evaluation`).
    """
    if mode == "train":
        return evaluation.training_env_kwargs(
            full_action_space=MULTITASK_FULL_ACTION_SPACE)
    if mode == "test":
        return evaluation.evaluation_env_kwargs(
            full_action_space=MULTITASK_FULL_ACTION_SPACE)
    raise ValueError(f"mode must be 'train' or 'test', got {mode!r}")
