"""Parsed trainer flags (`cli.flags`) to the run's `config.TrainConfig`.

`build(flag_values)` reads the flags of `flags.define_train_flags` from an
absl `FlagValues` (parsed) and nothing else: a flag left unset (None) takes
the level's suite default (`envs.registry`), every config field with a flag
of its name takes that flag's value, and the rest is derived (the agent from
one probe environment's specs, the run directory, the learners' roles).
Bad input raises `errors.UsageError`, `ValueError` or the level's own error
(`registry.LevelError`, DeepMind Lab missing), each one sentence. It starts
no process and no server; TensorFlow loads only after the level name is
checked.
"""

import dataclasses
import os
import re

from impala_tf import config as config_lib
from impala_tf.errors import UsageError

# pylint: disable=import-outside-toplevel  TensorFlow loads when needed.


def level_set(flag_values):
    """The `registry.LevelSet` of --level_name and its options."""
    from impala_tf.envs import registry
    fv = flag_values
    return registry.parse_level_name(
        fv.level_name, sticky_action_prob=fv.sticky_action_prob,
        num_action_repeats=fv.num_action_repeats or None,
        level_cache_dir=fv.level_cache_dir or None,
        dataset_path=fv.dataset_path or None)


def _lab_missing_error():
    try:
        from impala_tf.envs import dmlab
        return dmlab.DeepMindLabNotInstalledError
    except ImportError:
        return UsageError


def learner_hosts(flag_values):
    """Checks the role flags (--job_name, --task, --learner_hosts,
    --learner_address, --mode); returns the learner hosts (maybe [])."""
    from impala_tf.runtime import distributed
    fv = flag_values
    try:
        hosts = distributed.parse_hosts(fv.learner_hosts)
    except ValueError as e:
        raise UsageError(str(e)) from None
    job = fv.job_name
    if job and fv.mode != "train":
        raise UsageError(f"--job_name={job} only applies to --mode=train")
    if hosts and not job:
        raise UsageError("--learner_hosts needs --job_name=learner or "
                         "--job_name=actor")
    if job == "learner" and len(hosts) > 1 and fv.task >= len(hosts):
        raise UsageError(f"--task={fv.task} but --learner_hosts lists "
                         f"{len(hosts)} learners")
    if job and not hosts:
        _, _, port = fv.learner_address.rpartition(":")
        if not port.isdigit() or int(port) == 0:
            raise UsageError(
                f"--job_name={job} needs --learner_address=host:port with a "
                "fixed port (actors and learner must agree on it)")
    return hosts


def _from_flags(cls, flag_values, get, **values):
    """`cls(**values)`, each other field from the flag of its name (`get`:
    the flag or the suite's default) or, with no such flag, its default."""
    for field in dataclasses.fields(cls):
        if field.name not in values and field.name in flag_values:
            values[field.name] = get(field.name)
    return cls(**values)


def _probe_specs(levels, flag_values):
    """(observation spec, number of actions) of the level's first
    environment, built and closed here."""
    from impala_tf import types
    try:
        probe = levels.make(0, seed=flag_values.seed)
    except Exception as e:  # pylint: disable=broad-except
        if isinstance(e, (UsageError, ValueError, _lab_missing_error())):
            raise  # Already one sentence (LevelError, no DeepMind Lab...).
        detail = str(e).strip().splitlines()[0][:300] if str(e).strip() else ""
        raise UsageError(
            f"could not create the environment of --level_name="
            f"{flag_values.level_name} ({type(e).__name__}"
            + (f": {detail})" if detail else ")")) from None
    try:
        return types.observation_spec(probe), types.num_actions_of(probe)
    finally:
        probe.close()


def build(flag_values):
    """The `config.TrainConfig` of parsed trainer flags `flag_values`.

    Builds one environment of the level (its observation spec and action
    count make the agent). Raises on bad input (see the module doc).
    """
    fv = flag_values
    levels = level_set(fv)  # Before TensorFlow loads: bad names fail fast.
    from impala_tf import agents

    defaults = levels.defaults

    def get(name):  # The flag, or where it is unset the suite's default.
        value = fv[name].value
        return defaults.get(name) if value is None else value

    obs_spec, num_actions = _probe_specs(levels, fv)
    if fv.jit_compile and "instruction" in obs_spec:
        raise UsageError(f"--jit_compile cannot compile a learner for "
                         f"{fv.level_name}: its observations hold text, "
                         "which XLA has no operations for")
    agent = agents.AgentConfig(
        torso=get("agent"), num_actions=num_actions,
        use_lstm=get("use_lstm"),
        use_instruction="instruction" in obs_spec)
    actor_config = _from_flags(
        config_lib.ActorConfig, fv, get, level_set=levels, agent=agent,
        observation_spec=obs_spec,
        queue_capacity=fv.queue_capacity or get("batch_size"))
    learner_config = _from_flags(config_lib.LearnerConfig, fv, get)
    logdir = fv.logdir or os.path.join(
        "logs", re.sub(r"[^A-Za-z0-9_.-]+", "_", fv.level_name))
    hosts = learner_hosts(fv)
    if fv.job_name == "learner" and len(hosts) > 1 and fv.task > 0:
        # Learner 0 checkpoints; the others only log, beside it.
        logdir = os.path.join(logdir, f"learner_{fv.task}")
    config = _from_flags(
        config_lib.TrainConfig, fv, get, logdir=logdir, actor=actor_config,
        learner=learner_config, spawn_actors=not fv.job_name,
        learner_address=(hosts[0] if len(hosts) == 1
                         else fv.learner_address),
        learner_hosts=tuple(hosts))
    if fv.mode == "train" and fv.job_name != "actor":
        config_lib.check_listening(config)  # Before any server starts.
        if config.spawn_actors and config.num_actors < 1:
            raise UsageError("--num_actors must be at least 1 to train")
    return config
