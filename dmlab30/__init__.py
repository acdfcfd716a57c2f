"""DMLab-30: level names, reference scores and the human-normalised score.

The DMLab-30 score of an agent (IMPALA paper, Section 5.3 and Appendix B) is
the mean over the 30 *test* levels of the per-level human-normalised score

    100 * (score - random_score) / (human_score - random_score),

capped at 100 per level for the headline number ("mean capped"). Returns
obtained on the two ``_train`` levels count under their ``_test`` names, as in
the official release (deepmind/scalable_agent, ``dmlab30.py``).

The numbers live in :mod:`dmlab30.levels`; ``python -m dmlab30.report``
scores a CSV of per-level returns.
"""

import math
import numbers

from dmlab30.levels import (  # noqa: F401  (re-exported)
    ALL_LEVELS,
    HUMAN_SCORES,
    LANGUAGE_LEVELS,
    LEVEL_MAPPING,
    LEVELS,
    Level,
    PAPER_TABLE_3,
    PAPER_TABLE_B1,
    PAPER_TABLE_B1_COLUMNS,
    PAPER_TABLE_2,
    PAPER_TABLE_2_CORRECTIONS,
    PAPER_TABLE_2_LEVELS,
    RANDOM_SCORES,
    TEST_LEVELS,
    TRAIN_LEVELS,
)

__all__ = [
    "ALL_LEVELS", "DEFAULT_PER_LEVEL_CAP", "HUMAN_SCORES", "LANGUAGE_LEVELS",
    "LEVELS", "LEVEL_MAPPING", "Level", "PAPER_TABLE_3", "PAPER_TABLE_B1",
    "PAPER_TABLE_B1_COLUMNS", "PAPER_TABLE_2", "PAPER_TABLE_2_CORRECTIONS",
    "PAPER_TABLE_2_LEVELS", "RANDOM_SCORES", "TEST_LEVELS", "TRAIN_LEVELS",
    "compute_human_normalized_score", "human_normalized_score",
    "map_to_test_levels", "per_level_human_normalized_scores",
    "to_test_level",
]

# Prefixes that name a DMLab-30 level elsewhere in the project / in DMLab.
_PREFIXES = ("contributed/dmlab30/", "dmlab/")

DEFAULT_PER_LEVEL_CAP = 100.0


def to_test_level(level_name):
    """Returns the test-level name that ``level_name`` is scored under.

    Accepts test or train names, optionally prefixed with ``dmlab/`` or
    ``contributed/dmlab30/``. Raises ValueError for a name that is not one of
    the DMLab-30 levels.
    """
    if not isinstance(level_name, str):
        raise ValueError(f"level name must be a string, got {level_name!r}")
    name = level_name.strip()
    for prefix in _PREFIXES:
        if name.startswith(prefix):
            name = name[len(prefix):]
            break
    if name in LEVEL_MAPPING:
        return LEVEL_MAPPING[name]
    if name in HUMAN_SCORES:
        return name
    raise ValueError(f"unknown DMLab-30 level {level_name!r}")


def human_normalized_score(level_name, score, per_level_cap=None):
    """One level's human-normalised score in percent (optionally capped)."""
    level = to_test_level(level_name)
    human, random = HUMAN_SCORES[level], RANDOM_SCORES[level]
    value = 100.0 * (float(score) - random) / (human - random)
    if per_level_cap is not None:
        value = min(value, float(per_level_cap))
    return value


def _mean_return(level_name, returns):
    """A level's return: a number, or the mean of a non-empty sequence."""
    if isinstance(returns, numbers.Real):
        values = [float(returns)]
    else:
        try:
            values = [float(r) for r in returns]
        except (TypeError, ValueError):
            raise ValueError(
                f"returns for level {level_name!r} must be a number or a "
                f"sequence of numbers, got {returns!r}") from None
        if not values:
            raise ValueError(f"no returns given for level {level_name!r}")
    value = sum(values) / len(values)
    if not math.isfinite(value):
        raise ValueError(f"return for level {level_name!r} is not finite: "
                         f"{value!r}")
    return value


def map_to_test_levels(level_returns):
    """Maps ``{level name: return(s)}`` onto the 30 test levels.

    Train names count under their test names. Raises ValueError naming the
    offending level for an unknown level, a level given twice (e.g. under
    both its train and its test name) or a missing level.
    """
    result = {}
    for name, returns in level_returns.items():
        test_name = to_test_level(name)
        if test_name in result:
            raise ValueError(
                f"level {test_name!r} is given more than once (as {name!r})")
        result[test_name] = _mean_return(name, returns)
    missing = [level for level in TEST_LEVELS if level not in result]
    if missing:
        raise ValueError(
            f"missing returns for {len(missing)} DMLab-30 level(s): "
            + ", ".join(missing))
    return {level: result[level] for level in TEST_LEVELS}


def per_level_human_normalized_scores(level_returns, per_level_cap=None):
    """``{test level: human-normalised score}`` in the paper's level order."""
    returns = map_to_test_levels(level_returns)
    return {level: human_normalized_score(level, value, per_level_cap)
            for level, value in returns.items()}


def compute_human_normalized_score(level_returns,
                                   per_level_cap=DEFAULT_PER_LEVEL_CAP):
    """The DMLab-30 score: mean per-level human-normalised score, in percent.

    Args:
      level_returns: dict from level name (test or train name, see
        :func:`to_test_level`) to the mean episode return on that level, or to
        a sequence of episode returns (averaged). All 30 levels are required.
      per_level_cap: cap applied to every level's normalised score before
        averaging (100 for the paper's headline "mean capped" score), or None
        for the uncapped mean.

    Returns:
      A float, e.g. 44.45 for Table B.1's "IMPALA (experts, deep)" column.

    Raises:
      ValueError: a level is missing, unknown, given twice, or has no returns.
    """
    scores = per_level_human_normalized_scores(level_returns, per_level_cap)
    return sum(scores.values()) / len(scores)
