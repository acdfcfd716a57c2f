"""cli.train_config: parsed trainer flags to the run's TrainConfig."""

import pytest
from absl import flags

from impala_tf import errors
from impala_tf.cli import flags as train_flags
from impala_tf.cli import train_config
from impala_tf.envs import registry

TOY = "impala_tf.envs.toy:colour_choice"


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
    text = "--level_name=tests.test_train_config:text_env"
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


def test_logdir_defaults_to_the_level_name(parsed_flags):
    assert train_config.build(parsed_flags("--level_name=" + TOY)).logdir == (
        "logs/impala_tf.envs.toy_colour_choice")
    assert train_config.build(parsed_flags(
        "--level_name=" + TOY, "--logdir=/tmp/x")).logdir == "/tmp/x"


@pytest.mark.parametrize("args,message", [
    (["--learner_hosts=a:1,b:2"], "--learner_hosts needs --job_name=learner "
                                  "or --job_name=actor"),
    (["--learner_hosts=a:1,a:1", "--job_name=learner"],
     "lists an address twice"),
    (["--learner_hosts=a:0", "--job_name=learner"], "with a fixed port"),
    (["--job_name=actor", "--mode=test"],
     "--job_name=actor only applies to --mode=train"),
    (["--job_name=learner", "--task=2", "--learner_hosts=a:1,b:2"],
     "--task=2 but --learner_hosts lists 2 learners"),
    (["--job_name=actor", "--learner_address=localhost:0"],
     "--job_name=actor needs --learner_address=host:port with a fixed port"),
])
def test_role_flags_are_checked(parsed_flags, args, message):
    with pytest.raises(errors.UsageError, match=message):
        train_config.learner_hosts(parsed_flags("--level_name=" + TOY, *args))


def test_role_flags_give_the_learner_hosts(parsed_flags):
    assert train_config.learner_hosts(parsed_flags(
        "--level_name=" + TOY)) == []
    assert train_config.learner_hosts(parsed_flags(
        "--level_name=" + TOY, "--job_name=actor",
        "--learner_hosts=a:1, b:2")) == ["a:1", "b:2"]


def test_a_bad_level_fails_before_an_environment_is_built(parsed_flags):
    with pytest.raises(registry.LevelError):
        train_config.build(parsed_flags("--level_name=no_such_level_xyz"))
