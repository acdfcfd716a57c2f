"""Tests for impala_tf/cli/experiment.py, the trainer's entry point: its
flags, the one-sentence errors and exit statuses of `parse_flags` and
`run_guarded`, --learner_threads, and `run`'s dispatch on --mode and
--job_name.

In process, on real trainer flags (a fresh FlagValues each time) and the toy
level; `os._exit`, which `errors.fail(hard=True)` ends the process with, is
replaced by an exception there. The exit statuses of the real process are
checked in subprocesses.
"""

import os

import numpy as np
import pytest
from absl import flags

from impala_tf import testing
from impala_tf.cli import experiment
from impala_tf.cli import flags as train_flags
from impala_tf.cli import train_config
from impala_tf.errors import UsageError

# pylint: disable=import-outside-toplevel  TensorFlow loads when needed.

TOY = "--level_name=" + testing.TOY_LEVEL
INTERRUPTED = ("error: interrupted while starting; nothing was trained or "
               "saved\n")


def parsed(*args):
    """The trainer's flags parsed from args, in a fresh FlagValues."""
    flag_values = train_flags.define_train_flags(flags.FlagValues())
    flag_values(["impala", *args])
    return flag_values


class HardExit(BaseException):
    """What `os._exit(status)` raises in these tests."""

    def __init__(self, status):
        super().__init__(status)
        self.status = status


@pytest.fixture
def hard_exit(monkeypatch, capsys):
    """hard_exit(fn, *args) -> (status, captured stdout and stderr) of the
    `os._exit` that `fn(*args)` must end in."""
    def exit_(status):
        raise HardExit(status)
    monkeypatch.setattr(os, "_exit", exit_)

    def call(fn, *args):
        with pytest.raises(HardExit) as info:
            fn(*args)
        return info.value.status, capsys.readouterr()
    return call


def _never_run(config):
    raise AssertionError(f"run called with {config!r}")


def _raises(error):
    """A build or run that raises `error`."""
    def raise_(*args):
        del args
        raise error
    return raise_


# -- Flags. -----------------------------------------------------------------


def test_define_flags_defines_the_trainer_flags_as_its_own_key_flags():
    flag_values = flags.FlagValues()
    assert experiment.define_flags(flag_values) is flag_values
    for name in ("mode", "level_name", "logdir", "learner_threads"):
        assert name in flag_values
    own = {f.name for f in flag_values.get_key_flags_for_module(
        experiment.__name__)}
    defined = {f.name for f in flag_values.get_key_flags_for_module(
        train_flags.__name__)}
    assert own == defined and "level_name" in own  # Listed by --help.


def test_parse_flags_returns_the_arguments_left():
    flag_values = train_flags.define_train_flags(flags.FlagValues())
    assert experiment.parse_flags(
        ["impala", TOY, "--batch_size=4", "--mode=test"],
        flag_values) == ["impala"]
    assert (flag_values.batch_size, flag_values.mode) == (4, "test")


@pytest.mark.parametrize("arg,message", [
    ("--mode=dance",
     "flag --mode=dance: value should be one of <train|test|export>"),
    ("--learner_threads=0",
     "flag --learner_threads=0: 0 is not a positive integer"),
    ("--batch_size=x",
     "flag --batch_size=x: invalid literal for int() with base 10: 'x'"),
    ("--batch_sise=3",
     "Unknown command line flag 'batch_sise'. Did you mean: batch_size ?"),
])
def test_bad_flags_are_one_sentence_and_status_2(arg, message, hard_exit):
    flag_values = train_flags.define_train_flags(flags.FlagValues())
    status, captured = hard_exit(experiment.parse_flags, ["impala", arg],
                                 flag_values)
    assert (status, captured.err) == (2, f"error: {message}\n")


def test_a_bad_flag_message_is_cut_to_its_first_line(hard_exit):
    flag_values = train_flags.define_train_flags(flags.FlagValues())
    flags.register_validator("batch_size", lambda value: value < 100,
                             message="too big\nsecond line",
                             flag_values=flag_values)
    status, captured = hard_exit(experiment.parse_flags,
                                 ["impala", "--batch_size=200"], flag_values)
    assert (status, captured.err) == (
        2, "error: flag --batch_size=200: too big\n")


# -- --learner_threads. -----------------------------------------------------


@pytest.mark.parametrize("args,expected", [
    (["--num_actors=2"], 2),  # 4 CPUs, 2 local actors: 2 are left.
    (["--num_actors=8"], 1),  # At least one.
    (["--num_actors=2", "--learner_threads=3"], 3),
    (["--job_name=learner", "--learner_address=localhost:7001"],
     None),  # Only remote actors: TensorFlow's default.
    (["--job_name=learner", "--learner_address=localhost:7001",
      "--learner_threads=5"], 5),
    (["--job_name=actor", "--learner_address=localhost:7001",
      "--learner_threads=3"], None),
    (["--mode=test", "--learner_threads=3"], None),
    (["--mode=export", "--learner_threads=3"], None),
])
def test_set_learner_threads(args, expected, monkeypatch):
    import tensorflow as tf
    calls = []
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2, 3})
    for kind in ("intra", "inter"):
        monkeypatch.setattr(
            tf.config.threading, f"set_{kind}_op_parallelism_threads",
            lambda n, kind=kind: calls.append((kind, n)))
    experiment.set_learner_threads(parsed(TOY, *args))
    assert calls == ([] if expected is None
                     else [("intra", expected), ("inter", expected)])


# -- run_guarded. -----------------------------------------------------------


def test_run_guarded_runs_the_built_config(tmp_path, capsys):
    flag_values = parsed(TOY, f"--logdir={tmp_path}")
    seen = []
    experiment.run_guarded(lambda: train_config.build(flag_values),
                           seen.append)
    assert len(seen) == 1 and seen[0].logdir == str(tmp_path)
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize("args,message", [
    # registry.LevelError, a UsageError.
    (["--level_name=nosuchlevel"], "unknown level 'nosuchlevel'"),
    ([TOY, "--num_actors=0"], "--num_actors must be at least 1 to train"),
    # A ValueError of the config.
    ([TOY, "--final_entropy_cost=0.001"],
     "--final_entropy_cost needs --entropy_cost_decay_end_frames (the frame "
     "where the entropy cost reaches it)"),
])
def test_bad_input_while_building_is_one_sentence_and_status_2(
        args, message, hard_exit, tmp_path):
    flag_values = parsed(*args, f"--logdir={tmp_path / 'run'}")
    status, captured = hard_exit(
        experiment.run_guarded, lambda: train_config.build(flag_values),
        _never_run)
    assert (status, captured.err) == (2, f"error: {message}\n")
    assert not (tmp_path / "run").exists()


def test_a_value_error_while_building_is_cut_to_its_first_line(hard_exit):
    build = _raises(ValueError("environment values that do not fit\nmore"))
    status, captured = hard_exit(experiment.run_guarded, build, _never_run)
    assert (status, captured.err) == (
        2, "error: environment values that do not fit\n")


def test_ctrl_c_while_building_exits_130(hard_exit):
    status, captured = hard_exit(experiment.run_guarded,
                                 _raises(KeyboardInterrupt()), _never_run)
    assert (status, captured.err) == (130, INTERRUPTED)


def test_a_usage_error_while_running_is_status_2(hard_exit, tmp_path):
    """A run of --mode=test with no checkpoint: the real UsageError."""
    flag_values = parsed(TOY, "--mode=test", f"--logdir={tmp_path}")
    status, captured = hard_exit(
        experiment.run_guarded, lambda: train_config.build(flag_values),
        lambda config: experiment.run(config, flag_values))
    assert (status, captured.err) == (
        2, f"error: --logdir {tmp_path} has no checkpoint; train first\n")


def test_failing_actors_exit_1_and_ctrl_c_while_running_130(hard_exit):
    from impala_tf.runtime import supervisor
    failing = supervisor.ActorsFailing("actor 1 failed 3 times in 60 s")
    status, captured = hard_exit(experiment.run_guarded, lambda: "config",
                                 _raises(failing))
    assert (status, captured.err) == (
        1, "error: actor 1 failed 3 times in 60 s\n")
    status, captured = hard_exit(experiment.run_guarded, lambda: "config",
                                 _raises(KeyboardInterrupt()))
    assert (status, captured.err) == (130, INTERRUPTED)


def test_other_errors_propagate(capsys):
    """A ValueError while running, or another error while building, is a
    bug, not bad input: it keeps its traceback."""
    with pytest.raises(ValueError, match="a bug"):
        experiment.run_guarded(lambda: "config", _raises(ValueError("a bug")))
    with pytest.raises(RuntimeError, match="a bug"):
        experiment.run_guarded(_raises(RuntimeError("a bug")), _never_run)
    assert capsys.readouterr().err == ""


# -- run: --mode and --job_name. --------------------------------------------


def test_train_mode_trains_the_config(monkeypatch, tmp_path):
    from impala_tf.runtime import actor as actor_lib
    from impala_tf.runtime import trainer
    trained = []
    monkeypatch.setattr(trainer, "train", trained.append)
    monkeypatch.setattr(actor_lib, "run_remote_actor", _never_run)
    flag_values = parsed(TOY, f"--logdir={tmp_path}")
    config = train_config.build(flag_values)
    experiment.run(config, flag_values)
    assert trained == [config]


@pytest.fixture
def remote_actor(monkeypatch):
    """The arguments `actor.run_remote_actor` is called with (it returns at
    once, or raises what `raising[0]` holds)."""
    from impala_tf.runtime import actor as actor_lib
    from impala_tf.runtime import trainer
    calls, raising = [], []

    def run_remote_actor(*args, **kwargs):
        calls.append((args, kwargs))
        if raising:
            raise raising[0]
    monkeypatch.setattr(actor_lib, "run_remote_actor", run_remote_actor)
    monkeypatch.setattr(trainer, "train", _never_run)
    return calls, raising


@pytest.mark.parametrize("roles,learner", [
    (["--learner_address=localhost:7001"], ("localhost:7001", 0, "learner")),
    # Synchronous learners: actor 3 of 2 learners sends to learner 3 % 2.
    (["--learner_hosts=localhost:7001,localhost:7002"],
     ("localhost:7002", 1, "worker")),
])
def test_an_actor_acts_for_its_learner(roles, learner, remote_actor, capsys):
    calls, _ = remote_actor
    flag_values = parsed(TOY, "--job_name=actor", "--task=3",
                         "--connect_timeout_s=9", *roles)
    config = train_config.build(flag_values)
    experiment.run(config, flag_values)
    (args, kwargs), = calls
    assert args == (config.actor, 3) + learner
    assert kwargs["connect_timeout_s"] == 9.0
    assert capsys.readouterr().out == (
        f"[impala] actor 3: connecting to the learner at {learner[0]}\n")


@pytest.mark.parametrize("message,line", [
    ("Graph execution error:\n\nDetected at node QueueEnqueue defined at:\n"
     "  File \"actor.py\", line 9, in run\n<stack traces unavailable>\n"
     "  Shape mismatch in tuple component 1. Expected [5,2], got [10,2]\n"
     "\t [[{{node QueueEnqueue}}]]\n",
     "Shape mismatch in tuple component 1. Expected [5,2], got [10,2]"),
    ("x" * 400 + "\nshort", "x" * 300),
    ("Graph execution error:\n\t [[{{node QueueEnqueue}}]]", ""),
])
def test_an_actor_that_does_not_match_its_learner_is_a_usage_error(
        message, line, remote_actor):
    import tensorflow as tf
    _, raising = remote_actor
    raising.append(tf.errors.InvalidArgumentError(None, None, message))
    flag_values = parsed(TOY, "--job_name=actor", "--task=3",
                         "--learner_address=localhost:7001")
    with pytest.raises(UsageError) as info:
        experiment.run(train_config.build(flag_values), flag_values)
    assert str(info.value) == (
        "actor 3 does not match the learner at localhost:7001; give every "
        f"role the same agent, level, unroll and batch flags ({line})")


@pytest.mark.parametrize("error", ["UnavailableError",
                                   "DeadlineExceededError"])
def test_an_actor_that_cannot_reach_its_learner_exits_1(error, remote_actor,
                                                        hard_exit):
    import tensorflow as tf
    _, raising = remote_actor
    raising.append(getattr(tf.errors, error)(None, None, "no connection"))
    flag_values = parsed(TOY, "--job_name=actor", "--task=3",
                         "--learner_address=localhost:7001",
                         "--connect_timeout_s=9")
    status, captured = hard_exit(
        experiment.run, train_config.build(flag_values), flag_values)
    assert (status, captured.err) == (
        1, f"error: actor 3 could not reach the learner at localhost:7001 "
        f"within 9s ({error})\n")


@pytest.fixture(scope="module")
def checkpointed(tmp_path_factory):
    """(logdir, values): a run directory whose one checkpoint holds a toy
    agent whose variables are `values`, random normal numbers (no
    run_config.json)."""
  
    import tensorflow as tf
    from impala_tf.agents import policy
    from impala_tf.envs import toy
    from impala_tf.runtime import evaluate
    logdir = tmp_path_factory.mktemp("run")
    actor = train_config.build(parsed(TOY, f"--logdir={logdir}")).actor
    agent = actor.agent.build()
    evaluate.play_episode(  # Creates the variables.
        policy.make_policy_step(agent, actor.observation_spec, 1), agent,
        toy.ColourChoice(), list(actor.observation_spec), max_steps=1)
    rng = np.random.default_rng(0)
    for variable in agent.variables:  # Unlike any freshly built agent's.
        variable.assign(rng.normal(size=variable.shape).astype(
            variable.dtype.as_numpy_dtype))
    tf.train.CheckpointManager(tf.train.Checkpoint(agent=agent),
                               str(logdir / "checkpoints"),
                               max_to_keep=1).save()
    return logdir, [v.numpy() for v in agent.variables]


def _assert_holds(variables, values):
    """Each of `values` is the value of one of `variables`."""
    arrays = [np.asarray(v) for v in variables]
    for value in values:
        assert any(a.shape == value.shape and np.array_equal(a, value)
                   for a in arrays), value.shape


def test_test_mode_evaluates_the_checkpoint(checkpointed, monkeypatch,
                                            capsys):
    from impala_tf.runtime import evaluate
    logdir, values = checkpointed
    calls, restored = [], []
    real_evaluate = evaluate.evaluate

    def spy(actor_config, restore, *args, **kwargs):
        calls.append((args, kwargs))

        def restore_and_keep(checkpoint):
            restore(checkpoint)
            restored.append([v.numpy() for v in checkpoint.agent.variables])
        return real_evaluate(actor_config, restore_and_keep, *args, **kwargs)
    monkeypatch.setattr(evaluate, "evaluate", spy)
    flag_values = parsed(TOY, f"--logdir={logdir}", "--mode=test",
                         "--test_num_episodes=2", "--seed=5",
                         "--num_action_repeats=3")
    experiment.run(train_config.build(flag_values), flag_values)
    output = str(logdir / "test_scores.csv")
    assert calls == [((2, output), {"seed": 10_005,
                                    "num_action_repeats": 3})]
    _assert_holds(restored[0], values)
    with open(output) as f:
        assert len(f.read().strip().splitlines()) == 1 + 2  # Header, rows.
    lines = capsys.readouterr().out.splitlines()
    assert lines[-2].startswith(f"[impala] {testing.TOY_LEVEL}: mean return ")
    assert lines[-2].endswith(" over 2 episodes")
    assert lines[-1] == f"[impala] per-episode scores written to {output}"


def test_export_mode_exports_the_checkpointed_policy(checkpointed, capsys):
    import tensorflow as tf
    logdir, values = checkpointed
    flag_values = parsed(TOY, f"--logdir={logdir}", "--mode=export")
    experiment.run(train_config.build(flag_values), flag_values)
    export_dir = logdir / "saved_model"
    assert (export_dir / "assets" / "inputs.json").is_file()
    reader = tf.train.load_checkpoint(str(export_dir / "variables" /
                                          "variables"))
    _assert_holds([reader.get_tensor(name) for name in
                   reader.get_variable_to_shape_map()], values)
    assert capsys.readouterr().out.splitlines()[-1] == (
        f"[impala] SavedModel written to {export_dir}; what it expects: "
        f"{export_dir}/assets/inputs.json")


@pytest.mark.parametrize("mode", ["test", "export"])
def test_test_and_export_need_a_checkpoint(mode, tmp_path):
    flag_values = parsed(TOY, f"--logdir={tmp_path}", f"--mode={mode}")
    with pytest.raises(UsageError, match=(
            f"^--logdir {tmp_path} has no checkpoint; train first$")):
        experiment.run(train_config.build(flag_values), flag_values)
    assert not (tmp_path / "saved_model").exists()


# -- The process. -----------------------------------------------------------


@pytest.mark.parametrize("args,stderr", [
    (["stray"], "error: unexpected arguments 'stray'\n"),
    (["--batch_size=x"], "error: flag --batch_size=x: invalid literal for "
     "int() with base 10: 'x'\n"),
    (["--mode=test", "--level_name=nosuchlevel"],
     "error: unknown level 'nosuchlevel'\n"),
], ids=["argument", "flag", "level"])
def test_the_program_exits_2_with_one_sentence(args, stderr, tmp_path):
    result = testing.run_impala(args + [f"--logdir={tmp_path / 'run'}"],
                                timeout=120, isolate=False)
    assert (result.returncode, result.stderr) == (2, stderr)
    assert result.stdout == "" and not (tmp_path / "run").exists()


@pytest.mark.slow
@pytest.mark.parametrize("args,fragment", [
    (["--level_name=atari/pongg"], "unknown Atari game 'pongg'"),
    (["--level_name=nosuchlevel"], "unknown level 'nosuchlevel'"),
    (["--level_name=os.path:"], "malformed --level_name"),
    (["--level_name=no_such_module_xyz:make"], "cannot import module"),
    (["--batch_size=0"], "batch_size"),
    (["--unroll_length=-3"], "unroll_length"),
    (["--reward_clipping=sometimes"], "reward_clipping"),
    (["--mode=dance"], "mode"),
    (["--learner_threads=0"], "learner_threads"),
])
def test_bad_input_is_one_sentence_and_exit_2(args, fragment, tmp_path):
    result = testing.run_impala(
        args + ["--logdir=" + str(tmp_path / "x")], timeout=60,
        isolate=False)
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    errors = [l for l in result.stderr.splitlines() if l.startswith("error:")]
    assert len(errors) == 1 and fragment in errors[0], result.stderr
