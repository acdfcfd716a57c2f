"""Tests for impala_tf.config: one source of defaults for flags and configs."""

import dataclasses

import pytest
from absl import flags

from impala_tf import config as config_lib
from impala_tf.cli import flags as train_flags
from impala_tf.envs import registry

CONFIGS = (config_lib.TrainConfig, config_lib.ActorConfig,
           config_lib.LearnerConfig)
# Flags named like a field but turned into it by `train_config.build`, not
# copied.
DERIVED = {
    "logdir": "logs/<level_name> by default",
    "learner_hosts": "a comma-separated string, parsed into a tuple",
    "agent": "the torso name; the field is the whole AgentConfig",
    "envs_per_actor": "per suite",
    "queue_capacity": "batch_size by default",
}
TOY = "impala_tf.envs.toy:colour_choice"
FLAGS = train_flags.define_train_flags(flags.FlagValues())


def _fields_with_flags():
    for cls in CONFIGS:
        for field in dataclasses.fields(cls):
            if field.name in FLAGS:
                yield cls, field


def test_every_flag_default_is_its_config_fields_default():
    checked = 0
    for cls, field in _fields_with_flags():
        flag = FLAGS[field.name].default
        if field.name in DERIVED:
            continue
        if field.default is dataclasses.MISSING:
            # No default in the config: the suite gives it, the flag is unset.
            assert flag is None, (cls.__name__, field.name)
            assert field.name in registry.CUSTOM_DEFAULTS, field.name
        else:
            assert flag == field.default, (cls.__name__, field.name, flag,
                                           field.default)
            checked += 1
    assert checked >= 20


def test_the_documented_values_of_the_defaults_that_used_to_disagree():
    assert FLAGS["checkpoint_interval_s"].default == 300.0
    assert FLAGS["vector_env"].default is True
    assert FLAGS["connect_timeout_s"].default == 300.0
    assert FLAGS["jit_compile"].default is None  # Resolved by the learner.


def test_every_suite_default_has_an_unset_flag():
    for name in registry.CUSTOM_DEFAULTS:
        assert FLAGS[name].default is None, name


def test_field_default():
    assert config_lib.field_default(config_lib.LearnerConfig,
                                    "decay") == 0.99
    with pytest.raises(KeyError, match="batch_size"):
        config_lib.field_default(config_lib.LearnerConfig, "batch_size")


def test_an_incomplete_entropy_schedule_is_one_sentence_and_exit_2(tmp_path):
    from impala_tf import testing  # pylint: disable=import-outside-toplevel
    result = testing.run_impala(
        ["--level_name=" + TOY, "--final_entropy_cost=0.001",
         "--logdir=" + str(tmp_path / "never")], timeout=120, isolate=False)
    assert result.returncode == 2, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    lines = [l for l in result.stderr.strip().splitlines() if l.strip()]
    assert lines[-1] == ("error: --final_entropy_cost needs "
                         "--entropy_cost_decay_end_frames (the frame where "
                         "the entropy cost reaches it)"), lines
    assert not (tmp_path / "never").exists()
