"""Atari-57: the 57-game suite of the IMPALA paper, with reference scores.

* :mod:`atari57.games` -- the 57 snake_case names, ALE ROM ids, human and
  random reference scores, the paper's Table C.1 columns and Table 4 medians,
  :func:`human_normalized_score`.
* :mod:`atari57.multitask` -- :func:`assign_games` (actors to games) and the
  multi-task environment settings (full 18-action set).
* :mod:`atari57.evaluation` -- the paper's evaluation protocol as
  ``AtariEnvironment`` kwargs (:func:`evaluation_env_kwargs`).
* :mod:`atari57.report` -- ``impala-tf atari57 report --scores FILE.csv``:
  per-game and median/mean human-normalised scores beside the paper's;
  :mod:`atari57.score_files` reads the score CSVs (several files or
  directories, a header repeated by ``cat``).
* :mod:`atari57.evaluate` -- ``impala-tf atari57 evaluate``: tests every
  game's run in turn (or prints the 57 commands) and gathers the report.
* :mod:`atari57.suite` -- ``SUITE``, the plug-in through which impala_tf
  finds the games, their scores and these commands.

The data modules are plain Python: they need neither ALE nor TensorFlow;
only ``suite`` and ``evaluate`` import impala_tf.
"""

from atari57.evaluation import EVALUATION_EPISODES
from atari57.evaluation import evaluation_env_kwargs
from atari57.evaluation import training_env_kwargs
from atari57.games import ALL_GAMES
from atari57.games import check_game
from atari57.games import Game
from atari57.games import game_to_ale_id
from atari57.games import game_to_gym_id
from atari57.games import GAMES
from atari57.games import get_game
from atari57.games import human_normalized_score
from atari57.games import PAPER_COLUMN_LABELS
from atari57.games import PAPER_COLUMNS
from atari57.games import PAPER_MEDIANS
from atari57.games import paper_score
from atari57.multitask import actors_per_game
from atari57.multitask import assign_games
from atari57.multitask import multitask_env_kwargs

__all__ = [
    "ALL_GAMES", "EVALUATION_EPISODES", "GAMES", "Game", "PAPER_COLUMNS",
    "PAPER_COLUMN_LABELS", "PAPER_MEDIANS", "actors_per_game",
    "assign_games", "check_game", "evaluation_env_kwargs", "game_to_ale_id",
    "game_to_gym_id", "get_game", "human_normalized_score",
    "multitask_env_kwargs", "paper_score", "training_env_kwargs",
]
