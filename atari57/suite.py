"""Atari-57 as an impala_tf suite: `SUITE`, found through the entry point
`atari57 = "atari57.suite:SUITE"` (or IMPALA_TF_SUITES=atari57.suite).

It provides:
  * the 57 games as Atari levels (`--level_name=atari/<game>`), each
    played from its ale-py ROM id, with their human-normalised scores;
  * the level set `atari57`: all 57 games for one multi-task agent (the
    deep network, the full 18-action set; training and test environment
    settings of `atari57.multitask`), scored by the median and mean
    human-normalised score over the games with returns;
  * the paper's Table C.1 and Table 4 medians as reference data;
  * the commands `impala-tf atari57 report ...` (`atari57.report`) and
    `impala-tf atari57 evaluate ...` (`atari57.evaluate`).

Importing `atari57` itself does not import this module (nor impala_tf).
"""

import statistics

from atari57 import games
from atari57 import multitask
from impala_tf.envs import suites

__all__ = ["SUITE", "reference_returns", "suite_scores"]


def suite_scores(per_level_means):
    """Aggregate scores of the `atari57` level set.

    Args:
      per_level_means: {game: mean episode return}, any subset of the 57.

    Returns:
      {} without returns; else atari57_games_with_returns and the median
      and mean human-normalised score (%) over those games.
    """
    if not per_level_means:
        return {}
    scores = [games.human_normalized_score(g, r)
              for g, r in per_level_means.items()]
    return {"atari57_games_with_returns": len(scores),
            "atari57_median_human_normalized": float(
                statistics.median(scores)),
            "atari57_mean_human_normalized": float(statistics.fmean(scores))}


def reference_returns(game):
    """{"random": ..., "human": ...}: the game's reference scores."""
    g = games.get_game(game)
    return {"random": g.random, "human": g.human}


SUITE = suites.Suite(
    name="atari57",
    levels={g: suites.Level("atari", games.game_to_ale_id(g))
            for g in games.ALL_GAMES},
    level_sets={
        "atari57": suites.LevelSetSpec(
            kind="atari",
            levels=tuple(games.ALL_GAMES),
            defaults={"agent": "deep"},
            env_kwargs=multitask.multitask_env_kwargs("train"),
            test_env_kwargs=multitask.multitask_env_kwargs("test"),
            scores=suite_scores,
            headline="atari57_median_human_normalized"),
    },
    human_normalized=games.human_normalized_score,
    reference_returns=reference_returns,
    reference={
        # {column: {game: raw score}}, columns games.PAPER_COLUMNS.
        "impala_table_c1": {
            column: {g: games.paper_score(g, column) for g in games.ALL_GAMES}
            for column in games.PAPER_COLUMNS},
        # {column: median human-normalised score, %}.
        "impala_table_4_median": dict(games.PAPER_MEDIANS),
    },
    commands={"report": "atari57.report:main",
              "evaluate": "atari57.evaluate:main"},
)
