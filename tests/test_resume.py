"""Tests for impala_tf.runtime.resume (what a resumed run trains with) and the
history run_config.json keeps (`runs.RunDirectory.write_config`)."""

import dataclasses
import json

import pytest

from impala_tf import config as config_lib
from impala_tf.runtime import resume
from impala_tf.runtime import runs
from impala_tf.envs import registry


def _learner_config(**overrides):
    values = dict(
        batch_size=8, unroll_length=10, num_action_repeats=4,
        total_environment_frames=1_000_000, learning_rate=0.0006,
        epsilon=0.01, entropy_cost=0.01, reward_clipping="abs_one",
        max_grad_norm=40.0)
    values.update(overrides)
    return config_lib.LearnerConfig(**values)


class _Learner:
    """The two methods of `learner.Learner` that resume uses."""

    def __init__(self, values):
        self.values = dict(values)

    def hyperparameters(self):
        return dict(self.values)

    def set_hyperparameters(self, values):
        self.values.update(values)


HELD = dict(learning_rate=0.0006, entropy_cost=0.01, epsilon=0.01,
            max_grad_norm=40.0)


# -- The learning-rate horizon. ----------------------------------------------

def test_a_new_run_fixes_its_horizon_at_its_frames():
    c, note = resume.resolve_horizon(_learner_config(), None, False)
    assert c.learning_rate_decay_frames == 1_000_000 and note is None


def test_a_resumed_run_keeps_the_horizon_it_started_with():
    saved = {"learner": {"learning_rate_decay_frames": 1_000_000,
                         "total_environment_frames": 1_000_000}}
    c, note = resume.resolve_horizon(
        _learner_config(total_environment_frames=3_000_000), saved, True)
    assert c.learning_rate_decay_frames == 1_000_000
    assert c.total_environment_frames == 3_000_000
    assert "decays to 0 at 1,000,000 frames" in note


def test_an_explicit_horizon_wins_on_resume():
    saved = {"learner": {"learning_rate_decay_frames": 1_000_000}}
    c, note = resume.resolve_horizon(
        _learner_config(learning_rate_decay_frames=5_000_000), saved, True)
    assert c.learning_rate_decay_frames == 5_000_000 and note is None


def test_a_run_recorded_before_horizons_were_recorded():
    # Such a run_config.json has learning_rate_decay_frames None: its
    # schedule ended at the total it was started with.
    saved = {"learner": {"learning_rate_decay_frames": None,
                         "total_environment_frames": 2_000_000}}
    c, _ = resume.resolve_horizon(
        _learner_config(total_environment_frames=4_000_000), saved, True)
    assert c.learning_rate_decay_frames == 2_000_000


def test_no_checkpoint_means_a_fresh_start_whatever_the_file_says():
    saved = {"learner": {"learning_rate_decay_frames": 7}}
    c, _ = resume.resolve_horizon(_learner_config(), saved, False)
    assert c.learning_rate_decay_frames == 1_000_000


# -- The hyperparameters. ---------------------------------------------------

def test_flags_win_and_each_change_is_named():
    learner = _Learner(HELD)
    flags = _learner_config(learning_rate=0.0003, entropy_cost=0.02)
    c, note = resume.reconcile_hyperparameters(flags, learner, "flags")
    assert c == flags
    assert learner.values == dict(HELD, learning_rate=0.0003,
                                  entropy_cost=0.02)
    assert note == ("[impala] resumed with the flags' hyperparameters "
                    "(checkpoint -> flags): learning_rate 0.0006 -> 0.0003, "
                    "entropy_cost 0.01 -> 0.02")


def test_checkpoint_policy_keeps_the_held_values_and_says_so():
    held = dict(HELD, learning_rate=0.00123)  # Evolved by PBT.
    learner = _Learner(held)
    flags = _learner_config()
    c, note = resume.reconcile_hyperparameters(flags, learner, "checkpoint")
    assert learner.values == held
    assert c.learning_rate == 0.00123  # The config says what trains.
    assert dataclasses.replace(c, learning_rate=0.0006) == flags
    assert "learning_rate=0.00123 (flag 0.0006)" in note


def test_nothing_to_say_when_they_agree():
    learner = _Learner(HELD)
    for policy in resume.POLICIES:
        c, note = resume.reconcile_hyperparameters(_learner_config(),
                                                   learner, policy)
        assert note is None and c == _learner_config()


def test_unknown_policy():
    with pytest.raises(ValueError, match="--resume_hyperparameters"):
        resume.reconcile_hyperparameters(_learner_config(), _Learner(HELD),
                                         "both")


# -- run_config.json's history. ---------------------------------------------

def _train_config(logdir, learner):
    from impala_tf import agents  # pylint: disable=import-outside-toplevel
    import tensorflow as tf  # pylint: disable=import-outside-toplevel
    actor = config_lib.ActorConfig(
        level_set=registry.parse_level_name("impala_tf.envs.toy:"
                                            "colour_choice"),
        agent=agents.AgentConfig("shallow", 2, use_lstm=False,
                                 use_instruction=False),
        observation_spec={"frame": tf.TensorSpec([8, 8, 3], tf.uint8)},
        unroll_length=10, envs_per_actor=1, queue_capacity=8)
    return config_lib.TrainConfig(logdir=str(logdir), actor=actor,
                                  learner=learner)


def test_run_config_records_what_trains_and_the_changes_at_resumes(tmp_path):
    run_dir = runs.RunDirectory(str(tmp_path))
    first = _learner_config(learning_rate_decay_frames=1_000_000)
    run_dir.write_config(_train_config(tmp_path, first))
    second = dataclasses.replace(first, learning_rate=0.0003,
                                 total_environment_frames=2_000_000)
    run_dir.write_config(_train_config(tmp_path, second), frames=400_000)
    run_dir.write_config(_train_config(tmp_path, second), frames=900_000)
    with open(run_dir.config_path) as f:
        saved = json.load(f)
    assert saved["learner"]["learning_rate"] == 0.0003
    assert saved["learner"]["learning_rate_decay_frames"] == 1_000_000
    assert saved["history"] == [{
        "frames": 400_000,
        "changed": {"learning_rate": [0.0006, 0.0003],
                    "total_environment_frames": [1_000_000, 2_000_000]}}]
