"""Tests for impala_tf.pbt.rule (paper Appendix F): the copy threshold,
the explore step and the initial values of Table D.1."""

import numpy as np

from impala_tf.pbt import rule as pbt_rule


def test_copy_iff_better_by_more_than_the_threshold():
    assert not pbt_rule.should_copy(0.0, 0.05, 0.05)  # Not more: equal.
    assert pbt_rule.should_copy(0.0, 0.0500001, 0.05)
    assert pbt_rule.should_copy(5.0, 7.0, 0.05)
    assert not pbt_rule.should_copy(7.0, 5.0, 0.05)
    assert not pbt_rule.should_copy(5.0, None, 0.05)  # No fitness yet.


def test_explore_perturbs_each_value_with_probability_one_third():
    rule = pbt_rule.Rule()
    rng = np.random.default_rng(0)
    start = {"learning_rate": 1e-3, "entropy_cost": 1e-2, "epsilon": 1e-5,
             "max_grad_norm": 40.0}
    n = 30_000
    counts = {name: {"up": 0, "down": 0, "same": 0} for name in start}
    for _ in range(n):
        new = pbt_rule.explore(start, rng, rule)
        for name, value in new.items():
            ratio = value / start[name]
            if ratio == 1.0:
                counts[name]["same"] += 1
            elif abs(ratio - 1.2) < 1e-12:
                counts[name]["up"] += 1
            else:  # Exactly 1/1.2 or the test fails here.
                assert abs(ratio - 1 / 1.2) < 1e-12, (name, ratio)
                counts[name]["down"] += 1
    assert counts["max_grad_norm"]["same"] == n  # Not evolved by default.
    for name in rule.evolved:  # Standard error 0.0027; 0.02 is > 7 of them.
        assert abs(counts[name]["up"] / n - 1 / 6) < 0.02, counts
        assert abs(counts[name]["down"] / n - 1 / 6) < 0.02, counts
        assert abs(counts[name]["same"] / n - 2 / 3) < 0.02, counts


def test_initial_values_come_from_table_d1():
    rng = np.random.default_rng(1)
    draws = [pbt_rule.sample_initial(rng, {"max_grad_norm": 40.0})
             for _ in range(2000)]
    lrs = np.log10([d["learning_rate"] for d in draws])
    ents = np.log10([d["entropy_cost"] for d in draws])
    assert lrs.min() >= np.log10(5e-6) and lrs.max() <= np.log10(5e-3)
    assert ents.min() >= np.log10(5e-5) and ents.max() <= np.log10(1e-2)
    assert lrs.max() - lrs.min() > 2.5  # Spread over the log range.
    assert {d["epsilon"] for d in draws} == {1e-1, 1e-3, 1e-5, 1e-7}
    assert {d["max_grad_norm"] for d in draws} == {40.0}
    fixed = pbt_rule.sample_initial(np.random.default_rng(1),
                                    {"max_grad_norm": 40.0},
                                    {"learning_rate": 0.0})
    assert fixed["learning_rate"] == 0.0
    assert fixed["entropy_cost"] == draws[0]["entropy_cost"]
