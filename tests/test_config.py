"""Tests for impala_tf.config: one source of defaults for flags and configs."""

import dataclasses

import pytest
from absl import flags

from impala_tf import config as config_lib
from impala_tf import errors
from impala_tf.cli import flags as train_flags
from impala_tf.cli import train_config
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


@pytest.fixture
def parsed_flags():
    """parse(*args) -> the trainer's flags parsed from args, in a fresh
    FlagValues."""
    def parse(*args):
        flag_values = train_flags.define_train_flags(flags.FlagValues())
        flag_values(["impala"] + list(args))
        return flag_values
    return parse


def test_build_fills_every_field_from_flags_and_suite(parsed_flags):
    config = train_config.build(parsed_flags(
        "--level_name=" + TOY, "--batch_size=4", "--decay=0.9",
        "--checkpoint_interval_s=7", "--nojit_compile",
        "--connect_timeout_s=9"))
    suite = registry.CUSTOM_DEFAULTS
    assert config.learner.batch_size == 4 == config.actor.queue_capacity
    assert config.learner.decay == 0.9
    assert config.learner.unroll_length == suite["unroll_length"]
    assert config.learner.learning_rate == suite["learning_rate"]
    assert config.learner.max_grad_norm == 40.0
    assert config.learner.learning_rate_decay_frames is None
    assert config.checkpoint_interval_s == 7.0
    assert config.jit_compile is False
    assert config.actor.connect_timeout_s == 9.0
    assert config.actor.vector_env is True
    assert config.num_actors == 2 and config.learner_hosts == ()
    assert config.logdir.startswith("logs")


def text_env(seed=0):
    """A `ColourChoice` whose observations also hold an instruction."""
    from dm_env import specs  # pylint: disable=import-outside-toplevel
    from impala_tf.envs import toy  # pylint: disable=import-outside-toplevel

    class TextColourChoice(toy.ColourChoice):
        def observation_spec(self):
            return {"frame": super().observation_spec(),
                    "instruction": specs.Array([], object)}

    return TextColourChoice(seed=seed)


def test_jit_compile_with_text_observations_is_a_usage_error(parsed_flags):
    text = "--level_name=tests.test_config:text_env"
    with pytest.raises(errors.UsageError, match="text"):
        train_config.build(parsed_flags(text, "--jit_compile"))
    assert train_config.build(parsed_flags(text)).jit_compile is None


def test_entropy_cost_schedule_flags_build_the_schedule(parsed_flags):
    learner = train_config.build(parsed_flags(
        "--level_name=" + TOY, "--entropy_cost=0.01",
        "--final_entropy_cost=0.002",
        "--entropy_cost_decay_start_frames=1000",
        "--entropy_cost_decay_end_frames=3000")).learner
    assert (learner.final_entropy_cost, learner.entropy_cost_decay_start_frames,
            learner.entropy_cost_decay_end_frames) == (0.002, 1000, 3000)
    assert train_config.build(parsed_flags(
        "--level_name=" + TOY)).learner.final_entropy_cost is None


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
