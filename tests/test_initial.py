"""pbt.initial: each member's initial hyperparameters, and its config."""

import dataclasses

import numpy as np
import pytest
from absl import flags

from impala_tf import testing
from impala_tf.cli import flags as train_flags
from impala_tf.cli import train_config
from impala_tf.errors import UsageError
from impala_tf.pbt import initial
from impala_tf.pbt import rule

RUN = {"learning_rate": 0.0006, "entropy_cost": 0.01, "epsilon": 0.01,
       "max_grad_norm": 40.0}


def _no_defaults():
    raise AssertionError("the level's defaults were not needed")


def test_members_draw_from_table_d1_with_their_own_seed():
    first = initial.InitialHyperparameters(7, RUN, _no_defaults)
    draws = [first.values(m) for m in range(4)]
    assert draws == [initial.InitialHyperparameters(
        7, RUN, _no_defaults).values(m) for m in range(4)]
    assert len({d["learning_rate"] for d in draws}) == 4
    assert draws[0] != initial.InitialHyperparameters(
        8, RUN, _no_defaults).values(0)
    for d in draws:
        assert 5e-6 <= d["learning_rate"] <= 5e-3
        assert 5e-5 <= d["entropy_cost"] <= 1e-2
        assert d["epsilon"] in rule.EPSILONS
        assert d["max_grad_norm"] == 40.0  # Never drawn.
    # The draws of numpy's generator seeded with (seed, member).
    assert draws[2] == rule.sample_initial(
        np.random.default_rng([7, 2]), {}, {"max_grad_norm": 40.0})


def test_held_values_come_from_the_run_or_the_level():
    calls = []

    def level_defaults():
        calls.append(1)
        return {"learning_rate": 0.002, "max_grad_norm": 0.0}

    held = initial.InitialHyperparameters(
        0, dict(RUN, learning_rate=None, max_grad_norm=None),
        level_defaults, hold=("learning_rate", "epsilon"))
    assert held.held() == {"learning_rate": 0.002, "epsilon": 0.01,
                           "max_grad_norm": 0.0}
    assert held.drawn() == ["entropy_cost"]
    assert held.values(3)["learning_rate"] == 0.002
    assert calls
    everything = initial.InitialHyperparameters(0, RUN, _no_defaults,
                                                hold=rule.SAMPLED)
    assert everything.values(5) == RUN
    assert "none drawn" in everything.describe()


def test_fixed_values_leave_the_other_draws_unchanged():
    plain = initial.InitialHyperparameters(3, RUN, _no_defaults)
    fixed = initial.InitialHyperparameters(
        3, RUN, _no_defaults, fixed=["1:learning_rate=0", "1:epsilon=0.1"])
    assert fixed.values(1) == dict(plain.values(1), learning_rate=0.0,
                                   epsilon=0.1)
    assert fixed.values(0) == plain.values(0)
    assert fixed.describe(1).endswith(
        "; learning_rate=0, epsilon=0.1 from --pbt_fixed")


@pytest.mark.parametrize("entry,message", [
    ("one:learning_rate=0", "is not MEMBER:NAME=VALUE"),
    ("1:learning_rate=x", "is not MEMBER:NAME=VALUE"),
    ("1:lr=0.1", "NAME is one of learning_rate,entropy_cost,epsilon,"
                 "max_grad_norm and VALUE >= 0"),
    ("1:epsilon=-1", "VALUE >= 0"),
])
def test_parse_fixed_refuses_malformed_entries(entry, message):
    assert initial.parse_fixed(["2:entropy_cost=0.5"]) == [
        initial.Fixed(2, "entropy_cost", 0.5, "2:entropy_cost=0.5")]
    with pytest.raises(UsageError, match=f"--pbt_fixed={entry}"):
        initial.parse_fixed([entry])
    with pytest.raises(UsageError, match=message):
        initial.parse_fixed([entry])


def test_an_unknown_hold_is_refused():
    with pytest.raises(UsageError, match="--pbt_hold names lr, not one of"):
        initial.InitialHyperparameters(0, RUN, _no_defaults,
                                       hold=("learning_rate", "lr"))


def test_member_config_changes_values_seed_and_directory_only():
    flag_values = train_flags.define_train_flags(flags.FlagValues())
    flag_values(["impala", "--level_name=" + testing.TOY_LEVEL, "--seed=5"])
    config = train_config.build(flag_values)
    values = {"learning_rate": 0.001, "entropy_cost": 0.02, "epsilon": 0.1,
              "max_grad_norm": 0.0}
    member = initial.member_config(config, 3, values, "/pop/member_3")
    assert {n: getattr(member.learner, n) for n in rule.EVOLVABLE} == values
    assert member.actor.seed == 5 + 3 * initial.SEED_STRIDE == 3005
    assert member.logdir == "/pop/member_3"
    assert member.resume_hyperparameters == "checkpoint"
    assert dataclasses.replace(
        member, learner=config.learner, actor=config.actor,
        logdir=config.logdir,
        resume_hyperparameters=config.resume_hyperparameters) == config
    assert dataclasses.replace(member.learner, **{
        n: getattr(config.learner, n) for n in values}) == config.learner
