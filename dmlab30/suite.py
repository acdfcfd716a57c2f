"""DMLab-30 as an impala_tf suite: `SUITE`, found through the entry point
`dmlab30 = "dmlab30.suite:SUITE"` (or IMPALA_TF_SUITES=dmlab30.suite).

It provides:
  * the 32 DMLab-30 level names (30 levels, two of them with `_train` and
    `_test` variants) as DeepMind Lab levels: `--level_name=rooms_watermaze`
    loads `contributed/dmlab30/rooms_watermaze`, and a `_train` level is
    evaluated on its `_test` variant; their human-normalised scores;
  * the level set `dmlab30`: the 30 training levels for one multi-task
    agent, with the official release's hyperparameters, scored by the
    DMLab-30 mean capped (and uncapped) human-normalised score once every
    level has returns;
  * the paper's Tables 2, 3 and B.1 as reference data (Table 2 for
    `impala-tf ablation`);
  * the command `impala-tf dmlab30 report ...` (`dmlab30.report`).

Importing `dmlab30` itself does not import this module (nor impala_tf).
"""

import dmlab30
from dmlab30 import levels as levels_lib
from impala_tf.envs import suites

__all__ = ["DEFAULTS", "SUITE", "reference_returns", "suite_scores"]

# DeepMind Lab's directory of the DMLab-30 level scripts.
LEVEL_SCRIPT_PREFIX = "contributed/dmlab30/"

# The multi-task agent's flag defaults over DeepMind Lab's (the official
# release's DMLab-30 learning rate, entropy cost and reward clipping; the
# paper's 10 billion frames).
DEFAULTS = dict(
    learning_rate=0.00031866995608948655,
    entropy_cost=0.0033391318945337044,
    reward_clipping="soft_asymmetric",
    total_environment_frames=int(10e9))


def suite_scores(per_level_means):
    """Aggregate scores of the `dmlab30` level set.

    Args:
      per_level_means: {training level: mean episode return}, any subset.

    Returns:
      dmlab30_levels_with_returns, and once all 30 levels have returns the
      DMLab-30 score: dmlab30_mean_capped (per-level cap 100) and
      dmlab30_mean_uncapped, in %.
    """
    out = {"dmlab30_levels_with_returns": len(per_level_means)}
    if len(per_level_means) == len(levels_lib.TRAIN_LEVELS):
        out["dmlab30_mean_capped"] = dmlab30.compute_human_normalized_score(
            per_level_means)
        out["dmlab30_mean_uncapped"] = dmlab30.compute_human_normalized_score(
            per_level_means, per_level_cap=None)
    return out


def _level(name):
    test = levels_lib.LEVEL_MAPPING.get(name, name)
    return suites.Level("dmlab", LEVEL_SCRIPT_PREFIX + name,
                        test_level=test if test != name else None)


def reference_returns(level_name):
    """{"random": ..., "human": ...}: the level's reference scores (those of
    its test level)."""
    level = dmlab30.to_test_level(level_name)
    return {"random": dmlab30.RANDOM_SCORES[level],
            "human": dmlab30.HUMAN_SCORES[level]}


SUITE = suites.Suite(
    name="dmlab30",
    levels={name: _level(name) for name in sorted(levels_lib.ALL_LEVELS)},
    level_sets={
        "dmlab30": suites.LevelSetSpec(
            kind="dmlab",
            levels=tuple(levels_lib.TRAIN_LEVELS),
            defaults=DEFAULTS,
            scores=suite_scores,
            headline="dmlab30_mean_capped"),
    },
    human_normalized=dmlab30.human_normalized_score,
    reference_returns=reference_returns,
    reference={
        # {(correction, with replay): {level: average final return}}.
        "impala_table_2": levels_lib.PAPER_TABLE_2,
        # {column: mean capped human-normalised score, %}.
        "impala_table_3": levels_lib.PAPER_TABLE_3,
        # {column: {test level: raw test return}}.
        "impala_table_b1": levels_lib.PAPER_TABLE_B1,
    },
    commands={"report": "dmlab30.report:main"},
)
