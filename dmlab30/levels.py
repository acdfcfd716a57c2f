"""The 30 DMLab-30 levels, their reference scores and the IMPALA paper's results.

Sources (embedded here so that nothing outside this package is needed):

* Level names, human and random scores: Espeholt et al., "IMPALA: Scalable
  Distributed Deep-RL with Importance Weighted Actor-Learner Architectures"
  (ICML 2018, arXiv:1802.01561), Appendix B, which are also the numbers of the
  official release's ``dmlab30.py`` (github.com/deepmind/scalable_agent).
* Per-level results (``PAPER_TABLE_B1``): the paper's Table B.1, columns
  "IMPALA (experts, deep)" and "IMPALA (deep, PBT)"; raw test returns.
* Mean capped human-normalised scores (``PAPER_TABLE_3``): the paper's
  Table 3 (test set, 500 episodes per level).
* The off-policy corrections on 5 levels without and with replay
  (``PAPER_TABLE_2``): the paper's Table 2.

Two levels are trained on a ``_train`` variant and scored on the ``_test``
variant; for the other 28 the train and test names are the same.
"""

import collections

# One row of the level table. Scores are for the test level.
Level = collections.namedtuple(
    "Level", ["train_name", "test_name", "random_score", "human_score"])

# (train level, test level, random score, human score), in the paper's order.
LEVELS = tuple(Level(*row) for row in (
    ("rooms_collect_good_objects_train", "rooms_collect_good_objects_test",
     0.073, 10.0),
    ("rooms_exploit_deferred_effects_train",
     "rooms_exploit_deferred_effects_test", 8.501, 85.65),
    ("rooms_select_nonmatching_object", "rooms_select_nonmatching_object",
     0.312, 65.9),
    ("rooms_watermaze", "rooms_watermaze", 4.065, 54.0),
    ("rooms_keys_doors_puzzle", "rooms_keys_doors_puzzle", 4.135, 53.8),
    ("language_select_described_object", "language_select_described_object",
     -0.07, 389.5),
    ("language_select_located_object", "language_select_located_object",
     1.929, 280.7),
    ("language_execute_random_task", "language_execute_random_task",
     -5.913, 254.05),
    ("language_answer_quantitative_question",
     "language_answer_quantitative_question", -0.33, 184.5),
    ("lasertag_one_opponent_small", "lasertag_one_opponent_small",
     -0.224, 12.65),
    ("lasertag_three_opponents_small", "lasertag_three_opponents_small",
     -0.214, 18.55),
    ("lasertag_one_opponent_large", "lasertag_one_opponent_large",
     -0.083, 18.6),
    ("lasertag_three_opponents_large", "lasertag_three_opponents_large",
     -0.102, 31.5),
    ("natlab_fixed_large_map", "natlab_fixed_large_map", 2.173, 36.9),
    ("natlab_varying_map_regrowth", "natlab_varying_map_regrowth",
     2.989, 24.45),
    ("natlab_varying_map_randomized", "natlab_varying_map_randomized",
     7.346, 42.35),
    ("skymaze_irreversible_path_hard", "skymaze_irreversible_path_hard",
     0.1, 100.0),
    ("skymaze_irreversible_path_varied", "skymaze_irreversible_path_varied",
     14.4, 100.0),
    ("psychlab_arbitrary_visuomotor_mapping",
     "psychlab_arbitrary_visuomotor_mapping", 0.163, 58.75),
    ("psychlab_continuous_recognition", "psychlab_continuous_recognition",
     0.224, 58.3),
    ("psychlab_sequential_comparison", "psychlab_sequential_comparison",
     0.129, 39.5),
    ("psychlab_visual_search", "psychlab_visual_search", 0.085, 78.5),
    ("explore_object_locations_small", "explore_object_locations_small",
     3.575, 74.45),
    ("explore_object_locations_large", "explore_object_locations_large",
     4.673, 65.65),
    ("explore_obstructed_goals_small", "explore_obstructed_goals_small",
     6.76, 206.0),
    ("explore_obstructed_goals_large", "explore_obstructed_goals_large",
     2.61, 119.5),
    ("explore_goal_locations_small", "explore_goal_locations_small",
     7.66, 267.5),
    ("explore_goal_locations_large", "explore_goal_locations_large",
     3.14, 194.5),
    ("explore_object_rewards_few", "explore_object_rewards_few",
     2.073, 77.7),
    ("explore_object_rewards_many", "explore_object_rewards_many",
     2.438, 106.7),
))

# Train level name -> test level name (identity for 28 of the 30 levels).
LEVEL_MAPPING = collections.OrderedDict(
    (level.train_name, level.test_name) for level in LEVELS)

TRAIN_LEVELS = tuple(level.train_name for level in LEVELS)
TEST_LEVELS = tuple(level.test_name for level in LEVELS)

# Every DMLab-30 level name (32: 28 shared names plus two train/test pairs).
ALL_LEVELS = frozenset(TRAIN_LEVELS + TEST_LEVELS)

# Keyed by test level name.
HUMAN_SCORES = {level.test_name: level.human_score for level in LEVELS}
RANDOM_SCORES = {level.test_name: level.random_score for level in LEVELS}

# Levels with a language instruction (the ``INSTR`` observation is non-empty).
LANGUAGE_LEVELS = frozenset(
    name for name in ALL_LEVELS if name.startswith("language_"))

# The paper's Table B.1, raw test returns per level; keyed by column name.
PAPER_TABLE_B1_COLUMNS = collections.OrderedDict((
    ("impala_experts_deep", "IMPALA (experts, deep)"),
    ("impala_deep_pbt", "IMPALA (deep, PBT)"),
))

_B1_ROWS = (
    # test level, impala_experts_deep, impala_deep_pbt
    ("rooms_collect_good_objects_test", 9.0, 5.8),
    ("rooms_exploit_deferred_effects_test", 15.6, 11.0),
    ("rooms_select_nonmatching_object", 7.3, 26.1),
    ("rooms_watermaze", 26.9, 31.1),
    ("rooms_keys_doors_puzzle", 28.0, 24.3),
    ("language_select_described_object", 324.6, 593.1),
    ("language_select_located_object", 189.0, 301.7),
    ("language_execute_random_task", -49.9, 66.8),
    ("language_answer_quantitative_question", 219.4, 264.0),
    ("lasertag_one_opponent_small", -0.2, 0.3),
    ("lasertag_three_opponents_small", -0.1, 4.1),
    ("lasertag_one_opponent_large", -0.1, 2.5),
    ("lasertag_three_opponents_large", 19.1, 11.3),
    ("natlab_fixed_large_map", 34.7, 12.2),
    ("natlab_varying_map_regrowth", 20.7, 15.9),
    ("natlab_varying_map_randomized", 36.1, 29.0),
    ("skymaze_irreversible_path_hard", 13.6, 30.0),
    ("skymaze_irreversible_path_varied", 45.1, 53.6),
    ("psychlab_arbitrary_visuomotor_mapping", 16.4, 14.3),
    ("psychlab_continuous_recognition", 29.9, 29.9),
    ("psychlab_sequential_comparison", 0.0, 0.0),
    ("psychlab_visual_search", 0.0, 0.0),
    ("explore_object_locations_small", 57.8, 62.6),
    ("explore_object_locations_large", 37.0, 51.1),
    ("explore_obstructed_goals_small", 135.2, 188.8),
    ("explore_obstructed_goals_large", 39.5, 71.0),
    ("explore_goal_locations_small", 209.4, 252.5),
    ("explore_goal_locations_large", 83.1, 125.3),
    ("explore_object_rewards_few", 39.8, 43.2),
    ("explore_object_rewards_many", 58.7, 62.6),
)

PAPER_TABLE_B1 = collections.OrderedDict(
    (column, collections.OrderedDict((row[0], row[i + 1]) for row in _B1_ROWS))
    for i, column in enumerate(PAPER_TABLE_B1_COLUMNS))

# The paper's Table 3: mean capped human-normalised score on DMLab-30 (test).
# Recomputing it from Table B.1 (whose raw scores are rounded to 0.1) gives
# 44.45 and 49.36 for the two columns embedded above.
PAPER_TABLE_3 = collections.OrderedDict((
    ("a3c_deep", 23.8),
    ("impala_shallow", 37.1),
    ("impala_experts_deep", 44.5),
    ("impala_deep", 46.5),
    ("impala_deep_pbt", 49.4),
    ("impala_deep_pbt_8_learners", 49.1),
))

# The paper's Table 2 (Section 5.2.2): average final return over the 3 best
# hyperparameter settings of each off-policy correction on 5 DMLab levels,
# without and with a learner-side experience replay (50% of each batch
# drawn uniformly from a 10,000-trajectory FIFO buffer). Read from the text
# of arXiv:1802.01561v3, Table 2 (whose columns "Task 1".."Task 5" it names
# below the table in this order); checked against the paper's own summary:
# V-trace best on 3 of 5 tasks without replay and 4 of 5 with, and the only
# correction gaining on all 5 from replay (tests/test_ablation.py).
PAPER_TABLE_2_LEVELS = (
    "rooms_watermaze", "rooms_keys_doors_puzzle",
    "lasertag_three_opponents_small", "explore_goal_locations_small",
    "seekavoid_arena_01")
# Row names as the --off_policy_correction values, in the paper's order.
PAPER_TABLE_2_CORRECTIONS = ("vtrace", "1step_is", "epsilon", "none")

_TABLE_2_ROWS = (
    # correction, with replay, returns in PAPER_TABLE_2_LEVELS order
    ("vtrace", False, 46.8, 32.9, 31.3, 229.2, 43.8),
    ("1step_is", False, 51.8, 35.9, 25.4, 215.8, 43.7),
    ("epsilon", False, 44.2, 27.3, 4.3, 107.7, 41.5),
    ("none", False, 40.3, 29.1, 5.0, 94.9, 16.1),
    ("vtrace", True, 47.1, 35.8, 34.5, 250.8, 46.9),
    ("1step_is", True, 54.7, 34.4, 26.4, 204.8, 41.6),
    ("epsilon", True, 30.4, 30.2, 3.9, 101.5, 37.6),
    ("none", True, 35.0, 21.1, 2.8, 85.0, 11.2),
)

# {(correction, with replay): {level: average final return}}.
PAPER_TABLE_2 = collections.OrderedDict(
    ((row[0], row[1]), collections.OrderedDict(zip(PAPER_TABLE_2_LEVELS,
                                                   row[2:])))
    for row in _TABLE_2_ROWS)
