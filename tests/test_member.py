"""Tests for impala_tf.pbt.member: the fitness, the hook's burn-in and
ready episodes, copying a donor's checkpoint, and a member killed while it
evolves (save first, then log)."""

import os

import numpy as np
import pytest

from impala_tf import testing
from impala_tf.envs import registry
from impala_tf.pbt import member as pbt_member
from impala_tf.pbt import population as pbt_population
from impala_tf.pbt import rule as pbt_rule
from impala_tf.runtime import checkpoints as checkpoints_lib
from tests import pbt_support

NEW = pbt_support.NEW
_batch = pbt_support.batch
_learner = pbt_support.new_learner
_weights = pbt_support.weights


def test_fitness_is_human_normalised_where_the_scores_are_known():
    fitness = pbt_member.fitness
    pong = registry.parse_level_name("atari/pong")  # Random -20.7, human 14.6.
    assert fitness({"pong": [-20.7, 14.6]}, pong) == pytest.approx(0.5)
    # 5 points of return are 0.14 of human on Pong, 0.0007 on Ms. Pac-Man:
    # the threshold of 0.05 means the same on both.
    assert fitness({"pong": [-15.7]}, pong) == pytest.approx(5 / 35.3)
    pacman = registry.parse_level_name("atari/ms_pacman")
    assert (fitness({"ms_pacman": [312.0]}, pacman)
            - fitness({"ms_pacman": [307.0]}, pacman)) < 0.001
    lab = registry.parse_level_name("dmlab/rooms_watermaze")
    assert fitness({"rooms_watermaze": [10.0]}, lab) == pytest.approx(
        lab.human_normalized("rooms_watermaze", 10.0) / 100)
    assert 0 < fitness({"rooms_watermaze": [10.0]}, lab) < 0.5
    toy = registry.parse_level_name(testing.TOY_LEVEL)  # No references.
    assert fitness({toy.levels[0]: [4.0, 6.0]}, toy) == 5.0


class _FakeLearner:
    """The hook's view of a learner: hyperparameters only."""

    def __init__(self):
        self.values = {"learning_rate": 1e-3, "entropy_cost": 1e-2,
                       "epsilon": 1e-3, "max_grad_norm": 40.0}

    def hyperparameters(self):
        return dict(self.values)

    def set_hyperparameters(self, values):
        self.values.update(values)


class _CountingSaves:
    def __init__(self):
        self.saves = 0

    def save(self):
        self.saves += 1


def _episodes_out(frames, returns):
    """A step's output (the fields `Learner.train_step` gives for
    episodes) with one finished episode per entry of `returns`."""
    n = len(returns)
    return {"num_frames": np.int64(frames),
            "game_over": np.ones([1, n], bool),
            "episode_return": np.array([returns], np.float32),
            "episode_step": np.full([1, n], 10, np.int32),
            "level_id": np.zeros([n], np.int32)}


def test_burn_in_then_every_ready_episodes(tmp_path):
    population = pbt_population.Population(str(tmp_path), 2)
    population.write_fitness(1, {"fitness": 100.0})  # Always better.
    rule = pbt_rule.Rule(burn_in_frames=1000, ready_episodes=10)
    saves = _CountingSaves()
    hook = pbt_member.PbtHook(
        _FakeLearner(), saves, population, 0, rule,
        registry.parse_level_name(testing.TOY_LEVEL),
        np.random.default_rng(0), say=lambda m: None)
    for frames in range(0, 1000, 100):  # 100 episodes in the burn-in.
        hook(_episodes_out(frames, [1.0] * 10))
    assert population.events() == [] and saves.saves == 0
    hook(_episodes_out(1000, [2.0] * 6))
    assert population.events() == []  # 6 of 10 episodes.
    # The member has no checkpoint to copy: picked, better, not copied.
    hook(_episodes_out(1100, [4.0] * 4 + [9.0] * 3))
    events = population.events()
    assert len(events) == 1 and saves.saves == 1
    # Every episode since the last evolution counts: (12 + 16 + 27) / 13.
    assert events[0]["fitness"] == pytest.approx(55 / 13)
    assert events[0]["picked"] == 1 and events[0]["picked_fitness"] == 100
    assert events[0]["copied"] is False
    assert population.read_fitness(0)["fitness"] == pytest.approx(55 / 13)
    hook(_episodes_out(1200, [1.0] * 9))
    assert len(population.events()) == 1
    hook(_episodes_out(1300, [1.0]))
    assert len(population.events()) == 2


def test_copy_loads_weights_optimizer_and_hyperparameters(tmp_path):
    donor, recipient = _learner(**NEW), _learner()
    donor.step_function(jit_compile=False)(_batch(3))
    recipient.num_frames.assign(777)
    population = pbt_population.Population(str(tmp_path), 2)
    checkpoints_lib.Checkpoints(population.checkpoint_dir(1), donor).save()
    copy = population.copy_latest_checkpoint(1, str(tmp_path / "copy"))
    pbt_member.copy_from(recipient, copy)
    for a, b in zip(_weights(donor), _weights(recipient)):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(donor.optimizer.ms, recipient.optimizer.ms):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    assert recipient.hyperparameters() == NEW
    assert int(recipient.num_frames.numpy()) == 777  # Its own counters.
    assert int(recipient.num_steps.numpy()) == 0


# -- Save first, then log: a killed member and pbt.jsonl agree. --------------

class _Killed(BaseException):
    """The member's process dying at this point (nothing after it runs)."""


class _KilledAfterLog(pbt_population.Population):
    """A population whose member dies right after appending its event."""

    def append_event(self, record):
        super().append_event(record)
        raise _Killed()


class _KilledAtSave(checkpoints_lib.Checkpoints):
    """A member's checkpoints; the member dies when it next saves."""

    def save(self):
        raise _Killed()


def _member_and_donor(tmp_path, population_class):
    """Member 0 (the config's hyperparameters, a checkpoint at step 1,
    then 2 steps) and member 1 (NEW, one step, a checkpoint and fitness
    100) of a population; returns (population, member 0's learner, its
    weights at its checkpoint, member 1's learner)."""
    population = population_class(str(tmp_path), 2)
    donor = _learner(**NEW)
    donor.step_function(jit_compile=False)(_batch(3))
    checkpoints_lib.Checkpoints(population.checkpoint_dir(1), donor).save()
    population.write_fitness(1, {"fitness": 100.0})
    member = _learner()
    member.num_steps.assign(1)
    checkpoints_lib.Checkpoints(population.checkpoint_dir(0), member).save()
    saved = _weights(member)
    member.num_steps.assign(2)
    return population, member, saved, donor


def _resumed(population):
    """Member 0 as its restart restores it from its checkpoints."""
    learner = _learner()
    assert checkpoints_lib.Checkpoints(population.checkpoint_dir(0),
                                       learner).restore()
    return learner


def test_a_member_killed_after_logging_a_copy_resumes_with_it(tmp_path):
    population, member, _, donor = _member_and_donor(tmp_path,
                                                     _KilledAfterLog)
    hook = pbt_member.PbtHook(
        member, checkpoints_lib.Checkpoints(population.checkpoint_dir(0),
                                            member),
        population, 0, pbt_rule.Rule(), registry.parse_level_name(
            testing.TOY_LEVEL), np.random.default_rng(0), say=lambda m: None)
    with pytest.raises(_Killed):
        hook.evolve(frames=5000, value=1.0)
    [event] = population.events()
    assert event["copied"] and event["picked"] == 1
    resumed = _resumed(population)
    assert resumed.hyperparameters() == event["hyperparameters"]
    for name, value in event["hyperparameters"].items():  # NEW, explored.
        assert min(abs(value / NEW[name] - r) for r in (1, 1.2, 1 / 1.2)
                   ) < 1e-6, (name, value)
    for a, b in zip(_weights(donor), _weights(resumed)):
        np.testing.assert_array_equal(a, b)
    assert event["checkpoint"] == os.path.basename(  # It names it.
        checkpoints_lib.latest(population.checkpoint_dir(0)))
    assert population.read_fitness(0)["fitness"] == 1.0


def test_a_member_killed_between_copy_and_save_logs_nothing(tmp_path):
    population, member, saved, _ = _member_and_donor(
        tmp_path, pbt_population.Population)
    before = member.hyperparameters()
    hook = pbt_member.PbtHook(
        member, _KilledAtSave(population.checkpoint_dir(0), member),
        population, 0, pbt_rule.Rule(), registry.parse_level_name(
            testing.TOY_LEVEL), np.random.default_rng(0), say=lambda m: None)
    with pytest.raises(_Killed):
        hook.evolve(frames=5000, value=1.0)
    assert member.hyperparameters() != before  # It had copied.
    assert population.events() == []  # pbt.jsonl: nothing happened ...
    assert population.read_fitness(0) is None
    resumed = _resumed(population)  # ... and the restart agrees.
    assert resumed.hyperparameters() == before
    for a, b in zip(saved, _weights(resumed)):
        np.testing.assert_array_equal(a, b)
