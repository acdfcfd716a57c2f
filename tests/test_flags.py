"""Tests for impala_tf/cli/flags.py: the trainer's flags are defined by a
function, never by an import, and every entry point's help lists them."""

import dataclasses
import os
import subprocess
import sys
import textwrap

import pytest
from absl import flags

from impala_tf import config as config_lib
from impala_tf import testing
from impala_tf.cli import flags as train_flags
from impala_tf.runtime import sweep

TOY = "--level_name=" + testing.TOY_LEVEL


def test_importing_the_entry_points_defines_no_flag():
    code = textwrap.dedent("""
        import importlib, pkgutil
        from absl import app, flags
        before = set(flags.FLAGS)
        import impala_tf.cli
        names = [m.name for m in pkgutil.iter_modules(impala_tf.cli.__path__)]
        for name in names:
            importlib.import_module("impala_tf.cli." + name)
        for name in ("impala_tf.runtime.sweep", "impala_tf.pbt.initial"):
            importlib.import_module(name)
        print(sorted(names))
        print(sorted(set(flags.FLAGS) - before))
    """)
    result = subprocess.run([sys.executable, "-c", code], cwd=testing.REPO,
                            env=dict(os.environ, PYTHONPATH=testing.REPO),
                            capture_output=True, text=True, timeout=300,
                            check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    modules, defined = result.stdout.strip().splitlines()[-2:]
    for name in ("experiment", "pbt", "ablation", "launch", "flags",
                 "train_config"):
        assert repr(name) in modules, modules
    assert defined == "[]"


def test_define_train_flags_defines_every_flag_in_the_given_values():
    flag_values = train_flags.define_train_flags(flags.FlagValues())
    assert "level_name" not in flags.FLAGS  # Not the global one.
    # Every config field the user sets has its flag (test_config.py checks
    # their defaults).
    for cls in (config_lib.TrainConfig, config_lib.ActorConfig,
                config_lib.LearnerConfig):
        for field in dataclasses.fields(cls):
            if field.name not in ("level_set", "agent", "observation_spec",
                                  "spawn_actors", "prefetch", "actor",
                                  "learner"):
                assert field.name in flag_values, field.name
    for name in ("mode", "level_name", "logdir", "learning_rate",
                 "architecture", "test_num_episodes", "export_dir"):
        assert name in flag_values
    with pytest.raises(flags.DuplicateFlagError):
        train_flags.define_train_flags(flag_values)


def test_a_sweep_passes_on_the_trainer_flags_given():
    flag_values = train_flags.define_train_flags(flags.FlagValues())
    flag_values(["prog", TOY, "--batch_size=4", "--seed=3"])
    assert sweep.passed_flags(flag_values, exclude=("seed",)) == [
        TOY, "--batch_size=4"]


@pytest.mark.parametrize("module,args", [
    ("impala_tf.cli.experiment", ["--mode=test", "--help"]),
    ("impala_tf.cli.experiment", ["--mode=test", "--helpfull"]),
    ("impala_tf.cli.experiment", ["--help"]),
    ("impala_tf", ["test", "--help"]),
    ("impala_tf", ["train", "--helpshort"]),
])
def test_trainer_help_lists_its_flags_and_starts_nothing(module, args,
                                                         tmp_path):
    logdir = tmp_path / "never"
    result = testing.run_impala(
        args + [TOY, f"--logdir={logdir}"], module=module, timeout=120,
        isolate=False)
    # absl ends a help request with status 1, having started nothing;
    # `impala-tf` reports help that was asked for as a success.
    expected = 0 if module == "impala_tf" else 1
    assert result.returncode == expected, result.stderr[-2000:]
    for flag in ("--level_name", "--test_num_episodes", "--learning_rate",
                 "--num_actors"):
        assert flag in result.stdout, result.stdout[-2000:]
    assert "[impala]" not in result.stdout + result.stderr
    assert not logdir.exists()


def test_pbt_help_lists_its_flags():
    result = testing.run_impala(["--help"], module="impala_tf.cli.pbt",
                                timeout=120, isolate=False)
    assert result.returncode == 1, result.stderr[-2000:]
    assert "--pbt_hold" in result.stdout and "--population_size" in (
        result.stdout)
