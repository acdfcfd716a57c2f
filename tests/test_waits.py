"""Tests for impala_tf.runtime.baselines.waits: the wait statistics of
the Table 1 architectures."""

import multiprocessing

import numpy as np

from impala_tf import testing
from impala_tf.runtime.baselines import waits

SPAWN = multiprocessing.get_context("spawn")


def test_wait_stats_sum_actor_rows_and_learner_fields():
    stats = waits.WaitStats(2, SPAWN)
    waits.Row(stats.row(0)).add("actor_pull_s", 1.5)
    waits.Row(stats.row(1)).add("actor_pull_s", 0.25)
    stats.add(1, "actor_unrolls", 3)
    stats.learner["learner_wait_s"] += 2.0
    record = stats.record()
    assert record["actor_pull_s"] == 1.75
    assert record["actor_unrolls"] == 3
    assert record["learner_wait_s"] == 2.0 and record["env_step_s"] == 0.0
    assert set(record) == set(waits.ACTOR_FIELDS + waits.LEARNER_FIELDS)


def test_timed_transport_counts_each_unroll():
    stats = waits.WaitStats(1, SPAWN)
    inner = testing.NullTransport([np.zeros(2)])
    timed = waits.TimedTransport(inner, waits.Row(stats.row(0)))
    for _ in range(3):
        timed.pull_weights()
        timed.enqueue({"x": np.zeros([4, 2])})
    record = stats.record()
    assert record["actor_unrolls"] == 3 and inner.trajectories == 12
    for key in ("actor_pull_s", "actor_act_s", "actor_send_s"):
        assert record[key] >= 0.0
