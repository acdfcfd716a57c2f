"""Tests of population-based training (`impala_tf.cli.pbt*`, paper Appendix F):
the exploit/explore rule, hyperparameters as learner variables, the donor
checkpoint copy, and a real population on the toy level."""

import json
import math
import os
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
import tensorflow as tf

from impala_tf import agents
from impala_tf.runtime import checkpoints as checkpoints_lib
from impala_tf.algorithm import learner as learner_lib
from impala_tf.pbt import member as pbt_member
from impala_tf.pbt import population as pbt_population
from impala_tf.pbt import rule as pbt_rule
from impala_tf.pbt import processes as pbt_supervisor
from impala_tf.runtime import progress
from impala_tf import testing
from impala_tf.envs import registry
from tests import procs

B, T, A, SIZE = 3, 4, 3, 24
NEW = {"learning_rate": 0.003, "entropy_cost": 0.05, "epsilon": 0.1,
       "max_grad_norm": 0.5}


# -- The rule. ----------------------------------------------------------------

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


@pytest.fixture
def pbt_flags():
    """parse(*args) -> the parsed `impala_tf.cli.pbt` command line's
    FlagValues (a fresh one each call, defined by `pbt.define_flags`)."""
    from absl import flags  # pylint: disable=import-outside-toplevel
    from impala_tf.cli import pbt  # pylint: disable=import-outside-toplevel

    def parse(*args):
        flag_values = pbt.define_flags(flags.FlagValues())
        flag_values(["impala_tf.cli.pbt", "--logdir=pop",
                     "--population_size=3", *args])
        return flag_values
    return parse


@pytest.mark.parametrize("level, clip_evolves", [
    ("atari57", True), ("atari/pong", True), ("dmlab30", False),
    (testing.TOY_LEVEL, False)])
def test_the_gradient_clip_evolves_on_atari_levels_only(pbt_flags, level,
                                                        clip_evolves):
    """Appendix F: on Atari the gradient-clip threshold evolves too."""
    from impala_tf.cli import pbt  # pylint: disable=import-outside-toplevel
    rule = pbt.rule_from_flags(pbt_flags(f"--level_name={level}"))
    assert ("max_grad_norm" in rule.evolved) == clip_evolves
    assert set(pbt_rule.DEFAULT_EVOLVED) <= set(rule.evolved)


def test_a_flagfile_does_not_fix_what_members_draw(pbt_flags):
    """Every configs/ file sets the learning rate, entropy cost and epsilon
    (flags 'given' in absl): the members still draw them from Table D.1
    unless --pbt_hold names them, and one line says which."""
    from impala_tf.cli import pbt  # pylint: disable=import-outside-toplevel
    flagfile = "--flagfile=" + os.path.join(testing.REPO, "configs",
                                            "pong_fast.cfg")
    initial = pbt.initial_from_flags(pbt_flags(flagfile))
    drawn = [initial.values(m) for m in range(3)]
    for name in ("learning_rate", "entropy_cost"):
        assert len({d[name] for d in drawn}) == 3, (name, drawn)
    for d in drawn:
        assert 5e-6 <= d["learning_rate"] <= 5e-3
        assert 5e-5 <= d["entropy_cost"] <= 1e-2
        assert d["epsilon"] in pbt_rule.EPSILONS
        assert d["max_grad_norm"] == 40.0  # Never drawn.
    line = initial.describe()
    assert line.startswith("[pbt] initial hyperparameters: learning_rate, "
                           "entropy_cost, epsilon drawn from Table D.1"), line
    assert "max_grad_norm=40 held" in line
    assert "set by the flags but drawn: --learning_rate, --entropy_cost, " \
        "--epsilon" in line, line
    assert "learning_rate=" + format(drawn[1]["learning_rate"], ".4g") \
        in initial.describe(1)

    initial = pbt.initial_from_flags(pbt_flags(
        flagfile, "--pbt_hold=learning_rate,epsilon",
        "--pbt_fixed=2:learning_rate=0"))
    held = [initial.values(m) for m in range(3)]
    assert [h["learning_rate"] for h in held] == [0.0006, 0.0006, 0.0]
    assert [h["epsilon"] for h in held] == [1e-5] * 3
    # The others' draws are those they would have been.
    assert [h["entropy_cost"] for h in held] == [d["entropy_cost"]
                                                 for d in drawn]
    line = initial.describe()
    assert ("entropy_cost drawn from Table D.1 for each member; "
            "learning_rate=0.0006, epsilon=1e-05, max_grad_norm=40 held at "
            "the flags' values; --pbt_fixed: 2:learning_rate=0") in line, line
    assert line.endswith("set by the flags but drawn: --entropy_cost "
                         "(--pbt_hold=entropy_cost would hold them)"), line
    assert "learning_rate=0 from --pbt_fixed" in initial.describe(2)

    initial = pbt.initial_from_flags(pbt_flags("--level_name=dmlab30",
                                               "--pbt_hold=learning_rate"))
    assert initial.values(0)["learning_rate"] == pytest.approx(
        registry.parse_level_name("dmlab30").defaults["learning_rate"])


def test_a_member_is_the_flags_config_with_its_own_values(pbt_flags,
                                                         tmp_path):
    """The member's config is built from the flags, then given its
    hyperparameters, seed and directory; no flag is written."""
    # pylint: disable=import-outside-toplevel
    import dataclasses
    from impala_tf.cli import pbt
    from impala_tf.cli import train_config
    flag_values = pbt_flags(f"--logdir={tmp_path}", "--seed=5",
                            "--level_name=" + testing.TOY_LEVEL,
                            "--learning_rate=0.002", "--num_actors=1",
                            "--pbt_fixed=1:entropy_cost=0.03")
    before = flag_values.flag_values_dict()
    base = train_config.build(flag_values)
    config, make_hooks = pbt.build_member(flag_values, 1)
    assert flag_values.flag_values_dict() == before
    values = pbt.initial_from_flags(flag_values).values(1)
    assert values["entropy_cost"] == 0.03
    assert values["learning_rate"] != 0.002  # Drawn, not held.
    assert {n: getattr(config.learner, n)
            for n in pbt_rule.EVOLVABLE} == values
    assert config.actor.seed == 5 + 1000
    assert config.logdir == os.path.join(str(tmp_path), "member_1")
    assert config.resume_hyperparameters == "checkpoint"
    assert base.resume_hyperparameters == "flags"
    # The rest is the flags' config.
    assert dataclasses.replace(config.learner, **{
        n: getattr(base.learner, n) for n in values}) == base.learner
    assert dataclasses.replace(
        config.actor, seed=base.actor.seed, level_set=base.actor.level_set,
        observation_spec=base.actor.observation_spec) == base.actor
    assert dataclasses.replace(
        config, actor=base.actor, learner=base.learner, logdir=base.logdir,
        resume_hyperparameters="flags") == base
    assert callable(make_hooks)


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


# -- Hyperparameters as variables. ------------------------------------------

def _config(**overrides):
    values = dict(
        batch_size=B, unroll_length=T, num_action_repeats=1,
        total_environment_frames=10 * B * T, learning_rate=0.01,
        epsilon=0.01, entropy_cost=0.01, reward_clipping="abs_one",
        max_grad_norm=40.0)
    values.update(overrides)
    return learner_lib.LearnerConfig(**values)


def _batch(seed=0):
    return testing.random_batch(B, T, A, SIZE, seed=seed)


def _learner(**overrides):
    """A built learner whose weights are the same for every call."""
    tf.random.set_seed(0)
    learner = learner_lib.Learner(
        agents.make_agent("shallow", A, use_lstm=False), _config(**overrides))
    learner.build(tf.nest.map_structure(tf.TensorSpec.from_tensor,
                                        _batch()))
    return learner


def _weights(learner):
    return [v.numpy() for v in learner.agent.trainable_variables]


def test_changed_hyperparameters_change_the_next_update():
    changed, fresh, unchanged = _learner(), _learner(**NEW), _learner()
    for a, b in zip(_weights(changed), _weights(fresh)):
        np.testing.assert_array_equal(a, b)  # The same start.
    step = changed.step_function(jit_compile=False)
    changed.set_hyperparameters(NEW)
    assert changed.hyperparameters() == NEW
    step(_batch(1))
    fresh.step_function(jit_compile=False)(_batch(1))
    unchanged.step_function(jit_compile=False)(_batch(1))
    for a, b in zip(_weights(changed), _weights(fresh)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)
    assert any(not np.allclose(a, b, rtol=1e-3) for a, b in
               zip(_weights(changed), _weights(unchanged)))
    # Setting them again changes the next update without a retrace.
    traces = step.experimental_get_tracing_count()
    changed.set_hyperparameters({"learning_rate": 0.0})
    before = _weights(changed)
    step(_batch(2))
    for a, b in zip(before, _weights(changed)):
        np.testing.assert_array_equal(a, b)  # Learning rate 0.
    assert step.experimental_get_tracing_count() == traces
    with pytest.raises(ValueError, match="unknown"):
        changed.set_hyperparameters({"decay": 0.5})


def test_hyperparameters_are_checkpointed(tmp_path):
    learner = _learner()
    learner.set_hyperparameters(NEW)
    checkpoints_lib.Checkpoints(str(tmp_path), learner).save()
    resumed = _learner()
    assert checkpoints_lib.Checkpoints(str(tmp_path), resumed).restore()
    assert resumed.hyperparameters() == NEW


def test_a_checkpoint_from_before_restores_with_the_configs_values(
        tmp_path):
    old = _learner()
    tf.train.Checkpoint(agent=old.agent, num_steps=old.num_steps).save(
        str(tmp_path / "ckpt"))
    learner = _learner()
    assert checkpoints_lib.Checkpoints(str(tmp_path), learner).restore()
    assert learner.hyperparameters() == {
        "learning_rate": 0.01, "entropy_cost": 0.01, "epsilon": 0.01,
        "max_grad_norm": 40.0}
    for a, b in zip(_weights(old), _weights(learner)):
        np.testing.assert_array_equal(a, b)


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


# -- The donor's checkpoint, copied while it saves. ---------------------------

class _Filled(tf.Module):
    """Variables that a save numbered k fills with k everywhere."""

    def __init__(self):
        super().__init__()
        self.big = tf.Variable(tf.zeros([512, 512]))
        self.small = tf.Variable(tf.zeros([7]))
        self.k = tf.Variable(0.0)


def test_a_checkpoint_being_saved_is_never_copied_half_written(tmp_path):
    population = pbt_population.Population(str(tmp_path), 2)
    directory = population.checkpoint_dir(1)
    module = _Filled()
    manager = tf.train.CheckpointManager(tf.train.Checkpoint(m=module),
                                         directory, max_to_keep=1)
    stop, saved = threading.Event(), []

    def donor():  # Saves as fast as it can, deleting the older ones.
        k = 0
        while not stop.is_set() and k < 400:
            k += 1
            for v in (module.big, module.small, module.k):
                v.assign(tf.fill(v.shape, float(k)))
            manager.save(checkpoint_number=k)
            saved.append(k)

    thread = threading.Thread(target=donor)
    thread.start()
    copied = []
    try:
        while thread.is_alive() and len(copied) < 40:
            copy = population.copy_latest_checkpoint(
                1, str(tmp_path / "copy"))
            if copy is None:
                continue
            reader = tf.train.load_checkpoint(copy)
            values = {float(x) for name in reader.get_variable_to_shape_map()
                      if name.startswith("m/")
                      for x in np.unique(reader.get_tensor(name))}
            assert values == {float(copy.rsplit("-", 1)[1])}, (copy, values)
            copied.append(copy)
    finally:
        stop.set()
        thread.join()
    assert len(copied) >= 5, (len(copied), len(saved))
    assert len({c.rsplit("-", 1)[1] for c in copied}) > 1  # Mid-saving.


def test_a_killed_save_and_a_damaged_checkpoint_are_not_copied(tmp_path):
    population = pbt_population.Population(str(tmp_path), 2)
    directory = population.checkpoint_dir(1)
    module = _Filled()
    module.k.assign(3.0)
    tf.train.CheckpointManager(tf.train.Checkpoint(m=module), directory,
                               max_to_keep=5).save(checkpoint_number=3)
    # A save killed half-way: a temporary directory and an index that the
    # state file does not name.
    os.makedirs(os.path.join(directory, "ckpt-9_temp"))
    with open(os.path.join(directory, "ckpt-9.index"), "wb") as f:
        f.write(b"half")
    copy = population.copy_latest_checkpoint(1, str(tmp_path / "copy"))
    assert copy.endswith("ckpt-3")
    assert float(tf.train.load_checkpoint(copy).get_tensor(
        "m/k/.ATTRIBUTES/VARIABLE_VALUE")) == 3.0
    # The named checkpoint's data damaged: no copy rather than a bad one.
    data = [n for n in os.listdir(directory) if n.startswith("ckpt-3.data")]
    with open(os.path.join(directory, data[0]), "r+b") as f:
        f.seek(100)
        f.write(b"\xff" * 64)
    assert population.copy_latest_checkpoint(
        1, str(tmp_path / "copy"), attempts=2) is None
    assert population.copy_latest_checkpoint(0, str(tmp_path / "c")) is None


# -- pbt.jsonl with torn lines (appends from hosts over NFS). ---------------

def _event(member, frames, fitness, copied=False):
    return {"time": 1.0 + frames, "member": member, "frames": frames,
            "fitness": fitness, "picked": 1 - member,
            "picked_fitness": None, "copied": copied,
            "donor_checkpoint": None,
            "hyperparameters": {"learning_rate": 1e-3 * (1 + frames / 100),
                                "entropy_cost": 1e-2, "epsilon": 1e-3,
                                "max_grad_norm": 40.0}}


def _torn_log(logdir):
    """pbt.jsonl of two members: three torn lines among four whole
    events."""
    whole = [json.dumps(_event(m, f, f / 100)).encode()
             for m, f in ((0, 100), (1, 100), (0, 200), (1, 200), (0, 300))]
    lines = [whole[0],
             whole[1][:40] + whole[2],  # Cut short, then another's line.
             whole[3],
             b"\x00" * 17 + b"\xff\xfe",  # Zeros and bytes of no UTF-8.
             b'{"member": 1, "frames": 300}',  # JSON, not an event.
             whole[4]]
    os.makedirs(logdir, exist_ok=True)
    with open(os.path.join(logdir, pbt_population.EVENTS_FILE), "wb") as f:
        f.write(b"\n".join(lines) + b"\n")


def test_torn_lines_are_skipped_and_counted(tmp_path):
    logdir = str(tmp_path)
    _torn_log(logdir)
    events = pbt_population.read_events(logdir)
    assert [(e["member"], e["frames"]) for e in events] == [
        (0, 100), (1, 200), (0, 300)]
    assert pbt_population.read_event_log(logdir) == (events, 3)
    # A last line still being written is left out, not counted.
    path = os.path.join(logdir, pbt_population.EVENTS_FILE)
    line = json.dumps(_event(1, 300, 3.0)).encode() + b"\n"
    with open(path, "ab") as f:
        f.write(line[:25])
    assert pbt_population.read_event_log(logdir) == (events, 3)
    # The supervisor says the torn lines once and each new event.
    population = pbt_population.Population(logdir, 2)
    said = []
    printer = pbt_supervisor.EventPrinter(population, said.append)
    printer.poll()
    assert said == [pbt_population.torn_lines_sentence(logdir, 3)], said
    assert "pbt.jsonl: skipped 3 torn lines" in said[0]
    printer.poll()
    assert len(said) == 1
    with open(path, "ab") as f:
        f.write(line[25:])
    population.append_event(_event(0, 400, 2.5, copied=True))
    printer.poll()
    assert said[1:] == [
        "[pbt] member 1 at 300 frames: fitness 3",
        "[pbt] member 0 at 400 frames: fitness 2.5, copied member 1"], said
    # The plot draws the whole events and says how many lines it skipped,
    # once.
    with open(path, "ab") as f:
        f.write(b"]]\n")
    png = str(tmp_path / "pbt.png")
    result = testing.run_impala(["--plot", f"--logdir={logdir}",
                                 f"--plot_output={png}"],
                                timeout=120, module="impala_tf.cli.pbt",
                                isolate=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("torn line") == 1, result.stdout
    assert "skipped 4 torn lines" in result.stdout, result.stdout
    assert os.path.getsize(png) > 10_000


# -- Refused input: one sentence, exit status 2. ----------------------------

def _refused(tmp_path, *flags):
    """Runs `python -m impala_tf.cli.pbt` with `flags`; returns its one error
    line after checking the exit status 2 and that nothing else was said."""
    result = testing.run_impala(
        [f"--logdir={tmp_path / 'pop'}", "--population_size=2", *flags],
        timeout=60, module="impala_tf.cli.pbt", isolate=False)
    assert result.returncode == 2, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    return lines[0]


def test_an_unknown_hold_is_refused(tmp_path):
    line = _refused(tmp_path, "--pbt_hold=learning_rate,lr")
    assert line == ("error: --pbt_hold names lr, not one of learning_rate,"
                    "entropy_cost,epsilon,max_grad_norm"), line


def test_several_synchronous_learners_are_refused(tmp_path):
    line = _refused(tmp_path, "--learner_hosts=h0:7001,h1:7002",
                    "--job_name=learner", "--task=0", "--pbt_member=0")
    assert "one learner per member" in line and "lists 2" in line, line


# -- A real population on the toy level. ------------------------------------

TOTAL = 8000


def _member_pid(logdir, member):
    """The pid of member's learner process, or None."""
    for pid in testing.processes():
        line = testing.cmdline(pid) or ""
        if (f"--pbt_member={member}" in line and f"--logdir={logdir}" in line
                and "impala_tf.cli.pbt" in line):
            return pid
    return None


def _frames(logdir):
    records = progress.read_records(logdir)
    return records[-1]["env_frames"] if records else 0


@pytest.mark.slow
@pytest.mark.timeout(1500)  # 7 processes start TensorFlow on shared CPUs.
@procs.requires_netns
def test_population_replaces_a_member_at_lr_0_and_survives_a_kill(
        tmp_path):
    """Three members on the toy level; member 0 starts at learning rate 0
    (stays at the random policy's 5 of 10) and must copy a better one.
    Member 1 is SIGKILLed once it has a checkpoint: it is restarted,
    resumes from it, and the population finishes."""
    logdir = str(tmp_path / "pop")
    flags = [f"--logdir={logdir}", "--population_size=3",
             "--level_name=" + testing.TOY_LEVEL, "--use_lstm=false",
             "--batch_size=8", "--unroll_length=10", "--num_actors=1",
             "--log_interval_s=1", "--learning_rate=0.002",
             "--pbt_hold=learning_rate",
             "--learning_rate_decay_frames=100000000",
             f"--total_environment_frames={TOTAL}",
             "--pbt_burn_in_frames=1000", "--pbt_ready_episodes=40",
             "--pbt_fixed=0:learning_rate=0", "--checkpoint_interval_s=2"]
    cmd = testing.isolated_command(
        [sys.executable, "-m", "impala_tf.cli.pbt"] + flags)
    proc = subprocess.Popen(cmd, cwd=testing.REPO, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            env=dict(os.environ, PYTHONUNBUFFERED="1"),
                            start_new_session=True)
    member_1 = os.path.join(logdir, "member_1")
    try:
        killed = None
        for _ in range(2400):  # A bounded wait for a checkpoint, then kill.
            if proc.poll() is not None:
                break
            if (os.path.exists(os.path.join(member_1, "checkpoints",
                                            "checkpoint"))
                    and _frames(member_1) < TOTAL - 1000):
                killed = _member_pid(logdir, 1)
                if killed is not None:
                    os.kill(killed, signal.SIGKILL)
                    break
            time.sleep(0.5)
        out, _ = proc.communicate(timeout=1200)
    finally:
        testing.kill_group(proc)
    assert killed is not None, out[-3000:]
    assert proc.returncode == 0, out[-3000:]
    assert "member 1: exited with status -9; restarting it" in out, out
    with open(os.path.join(member_1, "console.log")) as f:
        assert "[impala] resumed from" in f.read()
    for m in range(3):
        assert _frames(os.path.join(logdir, f"member_{m}")) >= TOTAL
    events = pbt_population.read_events(logdir)
    zero = [e for e in events if e["member"] == 0]
    copies = [e for e in zero if e["copied"]]
    assert copies, zero
    first = copies[0]
    assert first["picked"] in (1, 2)
    assert first["picked_fitness"] - first["fitness"] > 0.05
    # The copy brought the donor's learning rate: 0.002 times 1.2 to some
    # power (explored by the donor, and maybe after the copy).
    powers = math.log(first["hyperparameters"]["learning_rate"] / 0.002,
                      1.2)
    assert abs(powers - round(powers)) < 1e-6, first
    before = [e for e in zero if e["time"] < first["time"]]
    assert all(e["hyperparameters"]["learning_rate"] == 0 for e in before)
    for e in events:
        assert set(e) >= {"time", "member", "frames", "fitness", "picked",
                          "picked_fitness", "copied", "hyperparameters"}
    png = str(tmp_path / "pbt.png")
    result = testing.run_impala(["--plot", f"--logdir={logdir}",
                                 f"--plot_output={png}"],
                                module="impala_tf.cli.pbt", isolate=False)
    assert result.returncode == 0, result.stderr
    assert os.path.getsize(png) > 10_000
