r"""IMPALA entry point: `python -m impala_tf.cli.experiment --mode=train|test|export`.

With no flags it trains the paper's shallow feed-forward agent on Atari Pong
(Table G.1 hyperparameters). Flags keep the official release's names; a flag
left unset takes the default of the level's suite (Atari, DMLab or a user
environment, see `envs.registry`). Bad input prints one sentence and exits
with status 2.
"""

import dataclasses
import functools
import os
import re
import sys

# Quiet TensorFlow's C++ start-up chatter unless the user asked otherwise
# (set before TensorFlow is imported; actor processes inherit it). Without a
# GPU driver, also hide the harmless "failed call to cuInit" error line.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL",
                      "2" if os.path.exists("/dev/nvidiactl") else "3")

from absl import app  # pylint: disable=g-import-not-at-top
from absl import flags  # pylint: disable=g-import-not-at-top
from absl import logging  # pylint: disable=g-import-not-at-top

# pylint: disable-next=g-import-not-at-top
from impala_tf import config as config_lib

FLAGS = flags.FLAGS

# A flag named like a config field takes its default from the field (the one
# place it is written, `config.py`); None where the suite sets it.
_TRAIN = functools.partial(config_lib.field_default, config_lib.TrainConfig)
_ACTOR = functools.partial(config_lib.field_default, config_lib.ActorConfig)
_LEARNER = functools.partial(config_lib.field_default,
                             config_lib.LearnerConfig)

# What and where.
flags.DEFINE_enum("mode", "train", ["train", "test", "export"],
                  "Train, evaluate the latest checkpoint, or export a "
                  "SavedModel.")
flags.DEFINE_string("level_name", "atari/pong",
                    "atari/<game>, atari57, dmlab/<level>, a DMLab-30 level, "
                    "dmlab30, or MODULE:FUNCTION returning a dm_env.")
flags.DEFINE_string("logdir", None,
                    "Run directory (default: logs/<level_name>).")
flags.DEFINE_integer("seed", _ACTOR("seed"),
                     "Random seed of environments and actors.")
# Agent.
flags.DEFINE_enum("agent", None, ["shallow", "deep"],
                  "Network torso (default: shallow for Atari, deep for "
                  "DMLab).")
flags.DEFINE_bool("use_lstm", None,
                  "LSTM core (default: off for Atari, on otherwise).")
# Actors.
flags.DEFINE_integer("num_actors", _TRAIN("num_actors"), "Actor processes.",
                     lower_bound=0)
flags.DEFINE_integer("envs_per_actor", None,
                     "Environments stepped together by each actor, one "
                     "batched inference per step (default: the suite's, "
                     "envs/registry.py: Atari 64, MODULE:FUNCTION 32, "
                     "DMLab 1).",
                     lower_bound=1)
flags.DEFINE_bool("vector_env", _ACTOR("vector_env"),
                  "Atari: an actor steps its games as one batch with batched "
                  "preprocessing (envs/atari_vector.py, same semantics).")
flags.DEFINE_integer("unroll_length", None, "Unroll length T.",
                     lower_bound=1)
flags.DEFINE_integer("num_action_repeats", None, "Frames per agent step.",
                     lower_bound=1)
flags.DEFINE_integer("queue_capacity", None,
                     "Trajectory queue capacity (default: batch_size; the "
                     "release used 1).", lower_bound=1)
flags.DEFINE_string("learner_address", _TRAIN("learner_address"),
                    "host:port the learner serves on (port 0: pick one).")
# Roles on a cluster (README "Distributed training").
flags.DEFINE_enum("job_name", "", ["", "learner", "actor"],
                  "Empty: one learner process that spawns --num_actors local "
                  "actors. learner: serve on --learner_address (or the "
                  "--task-th of --learner_hosts) and wait for remote actors. "
                  "actor: act for the learner at --learner_address (or the "
                  "(--task % K)-th of --learner_hosts) until it is done.")
flags.DEFINE_integer("task", _TRAIN("task"),
                     "Index of this learner (in --learner_hosts) or actor "
                     "(seeds, levels).", lower_bound=0)
flags.DEFINE_string("learner_hosts", "",
                    "Synchronous learners: host:port,host:port,... (the same "
                    "list for every learner and actor).")
flags.DEFINE_bool("listen_on_all_interfaces",
                  _TRAIN("listen_on_all_interfaces"),
                  "Allow a learner that serves gRPC (--job_name=learner, "
                  "--learner_hosts, --local_transport=grpc) to start "
                  "TensorFlow's server: it has no authentication and listens "
                  "on every network interface, so use it on a private "
                  "network only. A learner whose actors are all local opens "
                  "no port and needs no such flag.")
flags.DEFINE_float("connect_timeout_s", _ACTOR("connect_timeout_s"),
                   "Actor: seconds to keep retrying to reach the learner.",
                   lower_bound=1.0)
flags.DEFINE_float("actor_timeout_s", _TRAIN("actor_timeout_s"),
                   "Learner: a remote actor silent this long counts as gone.",
                   lower_bound=1.0)
# Learner.
flags.DEFINE_integer("batch_size", None, "Unrolls per learner batch.",
                     lower_bound=1)
flags.DEFINE_integer("total_environment_frames", None,
                     "Frames to train for (learning rate reaches 0 there).",
                     lower_bound=1)
flags.DEFINE_integer("learning_rate_decay_frames",
                     _LEARNER("learning_rate_decay_frames"),
                     "Frames over which the learning rate decays linearly to "
                     "0 (default: --total_environment_frames, as the "
                     "release). Lets a short run keep a long schedule.",
                     lower_bound=1)
flags.DEFINE_float("learning_rate", None, "RMSProp learning rate.",
                   lower_bound=0.0)
flags.DEFINE_float("decay", _LEARNER("decay"), "RMSProp decay.",
                   lower_bound=0.0, upper_bound=1.0)
flags.DEFINE_float("momentum", _LEARNER("momentum"), "RMSProp momentum.",
                   lower_bound=0.0, upper_bound=1.0)
flags.DEFINE_float("epsilon", None, "RMSProp epsilon (inside the root).",
                   lower_bound=0.0)
flags.DEFINE_float("rmsprop_initial_mean_square",
                   _LEARNER("rmsprop_initial_mean_square"),
                   "RMSProp's mean square at the start: 1 as TF1 (the "
                   "release), 0 as Sonnet 2 and PyTorch.", lower_bound=0.0)
flags.DEFINE_float("replay_proportion", _LEARNER("replay_proportion"),
                   "Share of each batch replayed from the learner's buffer "
                   "(0: off; 0.5 in the paper's Table 2).", lower_bound=0.0,
                   upper_bound=0.99)
flags.DEFINE_integer("replay_capacity", _LEARNER("replay_capacity"),
                     "Trajectories the replay buffer holds (FIFO).",
                     lower_bound=1)
flags.DEFINE_float("entropy_cost", None, "Entropy cost.", lower_bound=0.0)
flags.DEFINE_float("final_entropy_cost", _LEARNER("final_entropy_cost"),
                   "Entropy cost reached at --entropy_cost_decay_end_frames, "
                   "linearly from --entropy_cost (default: no schedule).",
                   lower_bound=0.0)
flags.DEFINE_integer("entropy_cost_decay_start_frames",
                     _LEARNER("entropy_cost_decay_start_frames"),
                     "Frame where the entropy-cost schedule starts.",
                     lower_bound=0)
flags.DEFINE_integer("entropy_cost_decay_end_frames",
                     _LEARNER("entropy_cost_decay_end_frames"),
                     "Frame where it reaches --final_entropy_cost.",
                     lower_bound=1)
flags.DEFINE_float("baseline_cost", _LEARNER("baseline_cost"),
                   "Baseline cost.", lower_bound=0.0)
flags.DEFINE_float("discounting", _LEARNER("discounting"), "Discount factor.",
                   lower_bound=0.0, upper_bound=1.0)
flags.DEFINE_enum("reward_clipping", None,
                  ["abs_one", "soft_asymmetric", "none"],
                  "Reward clipping (default: abs_one; soft_asymmetric for "
                  "dmlab30).")
flags.DEFINE_float("max_grad_norm", _LEARNER("max_grad_norm"),
                   "Global gradient-norm clip (0: none).", lower_bound=0.0)
flags.DEFINE_enum("off_policy_correction",
                  _LEARNER("off_policy_correction"),
                  ["vtrace", "1step_is", "epsilon", "none"],
                  "Off-policy correction (paper Table 2).")
flags.DEFINE_float("clip_rho_threshold", _LEARNER("clip_rho_threshold"),
                   "V-trace rho-bar.")
flags.DEFINE_float("clip_pg_rho_threshold",
                   _LEARNER("clip_pg_rho_threshold"),
                   "V-trace policy-gradient rho-bar.")
flags.DEFINE_float("clip_c_threshold", _LEARNER("clip_c_threshold"),
                   "V-trace c-bar.")
flags.DEFINE_float("vtrace_lambda", _LEARNER("vtrace_lambda"),
                   "V-trace lambda.", lower_bound=0.0, upper_bound=1.0)
flags.DEFINE_bool("jit_compile", _TRAIN("jit_compile"),
                  "XLA-compile the learner step (default: on where the "
                  "learner sees a GPU, off on CPU, where it is 2.25x slower; "
                  "off for text observations, which XLA cannot compile).")
flags.DEFINE_integer("learner_threads", None,
                     "TensorFlow intra- and inter-op threads of the learner "
                     "process. Default: the CPUs the local actor processes "
                     "leave free, at least 1 (a learner with only remote "
                     "actors: every CPU).", lower_bound=1)
flags.DEFINE_enum("local_transport", _TRAIN("local_transport"),
                  ["shared_memory", "grpc"],
                  "How actor processes started by the learner exchange "
                  "trajectories and weights with it: shared memory (one copy "
                  "each side, no network port) or the learner's gRPC queue "
                  "and weights, as remote actors do (needs "
                  "--listen_on_all_interfaces).")
flags.DEFINE_enum("resume_hyperparameters",
                  _TRAIN("resume_hyperparameters"), ["flags", "checkpoint"],
                  "A resumed run's learning rate, entropy cost, epsilon and "
                  "gradient clip: the flags' (one line names each that "
                  "differs from the checkpoint's) or the checkpoint's "
                  "(population-based training's members).")
flags.DEFINE_enum("precision", _ACTOR("precision"),
                  ["float32", "bfloat16", "auto"],
                  "Numeric precision of the learner's step and the actors' "
                  "inference: bfloat16 is mixed precision (weights, "
                  "optimizer and loss sums stay float32); auto picks it "
                  "where the CPU has amx_bf16 or avx512_bf16.")
flags.DEFINE_float("checkpoint_interval_s",
                   _TRAIN("checkpoint_interval_s"),
                   "Seconds between checkpoints.", lower_bound=1.0)
flags.DEFINE_float("log_interval_s", _TRAIN("log_interval_s"),
                   "Seconds between progress lines.", lower_bound=0.1)
flags.DEFINE_float("env_timeout_s", _TRAIN("env_timeout_s"),
                   "Restart an actor whose environment step or reset takes "
                   "longer (its first reset may take 10x; 0: never).",
                   lower_bound=0.0)
flags.DEFINE_enum("architecture", _ACTOR("architecture"),
                  list(config_lib.ARCHITECTURES),
                  "How acting and learning are organised (paper Table 1, "
                  "docs/TABLE1.md): impala; a2c_sync_traj (actors wait for "
                  "the update after each unroll; --batch_size = "
                  "--num_actors x --envs_per_actor); a2c_sync_step (one "
                  "policy call per step for all environments, each actor's "
                  "environments in their own process); a3c (each actor "
                  "sends the gradient of its own unroll).")
# Environments.
flags.DEFINE_float("sticky_action_prob", 0.0,
                   "Atari sticky-action probability (0 in the paper).",
                   lower_bound=0.0, upper_bound=1.0)
flags.DEFINE_string("level_cache_dir", None, "DMLab level cache directory.")
flags.DEFINE_string("dataset_path", None, "DMLab datasetPath.")
# Test and export.
flags.DEFINE_integer("test_num_episodes", 10, "Episodes per level in test.",
                     lower_bound=1)
flags.DEFINE_string("test_output", None,
                    "CSV of test scores (default: <logdir>/test_scores.csv)."
                    )
flags.DEFINE_string("export_dir", None,
                    "SavedModel directory (default: <logdir>/saved_model).")


class UsageError(Exception):
    """Bad flags or environment; printed as one sentence, exit status 2."""


def fail(message):
    """Prints `error: message` and exits with status 2 (bad input)."""
    sys.stderr.write(f"error: {message}\n")
    sys.stderr.flush()
    os._exit(2)  # pylint: disable=protected-access


def _interrupted():
    sys.stderr.write("error: interrupted while starting; nothing was "
                     "trained or saved\n")
    sys.stderr.flush()
    os._exit(130)  # pylint: disable=protected-access


def parse_flags(argv):
    """absl's parser, but one sentence and status 2 on bad flags."""
    try:
        return FLAGS(argv)
    except flags.Error as e:
        fail(str(e).splitlines()[0])


def _level_set():
    from impala_tf.envs import registry
    return registry.parse_level_name(
        FLAGS.level_name, sticky_action_prob=FLAGS.sticky_action_prob,
        num_action_repeats=FLAGS.num_action_repeats or None,
        level_cache_dir=FLAGS.level_cache_dir or None,
        dataset_path=FLAGS.dataset_path or None)


def _lab_missing_error():
    try:
        from impala_tf.envs import dmlab
        return dmlab.DeepMindLabNotInstalledError
    except ImportError:
        return UsageError


def _roles():
    """Checks the role flags; returns the list of learner hosts (maybe [])."""
    from impala_tf.runtime import distributed
    try:
        hosts = distributed.parse_hosts(FLAGS.learner_hosts)
    except ValueError as e:
        raise UsageError(str(e)) from None
    job = FLAGS.job_name
    if job and FLAGS.mode != "train":
        raise UsageError(f"--job_name={job} only applies to --mode=train")
    if hosts and not job:
        raise UsageError("--learner_hosts needs --job_name=learner or "
                         "--job_name=actor")
    if job == "learner" and len(hosts) > 1 and FLAGS.task >= len(hosts):
        raise UsageError(f"--task={FLAGS.task} but --learner_hosts lists "
                         f"{len(hosts)} learners")
    if job and not hosts:
        _, _, port = FLAGS.learner_address.rpartition(":")
        if not port.isdigit() or int(port) == 0:
            raise UsageError(
                f"--job_name={job} needs --learner_address=host:port with a "
                "fixed port (actors and learner must agree on it)")
    return hosts


def _flag_or_default(name, defaults):
    """The flag's value, or where it is unset (None) the suite's default
    (None if the suite has none)."""
    value = getattr(FLAGS, name)
    return defaults.get(name) if value is None else value


def _from_flags(cls, get, **values):
    """`cls(**values)`, each other field from the flag of its name (`get`:
    the flag or the suite's default) or, with no such flag, its default."""
    for field in dataclasses.fields(cls):
        if field.name not in values and field.name in FLAGS:
            values[field.name] = get(field.name)
    return cls(**values)


def build_configs():
    """Flags -> (TrainConfig, level_set); raises on bad input."""
    level_set = _level_set()  # Before TensorFlow loads: bad names fail fast.
    from impala_tf import agents
    from impala_tf import types

    d = level_set.defaults
    get = lambda n: _flag_or_default(n, d)
    try:
        probe = level_set.make(0, seed=FLAGS.seed)
    except Exception as e:  # pylint: disable=broad-except
        if isinstance(e, (UsageError, ValueError, _lab_missing_error())):
            raise  # Already one sentence (LevelError, no DeepMind Lab...).
        detail = str(e).strip().splitlines()[0][:300] if str(e).strip() else ""
        raise UsageError(
            f"could not create the environment of --level_name="
            f"{FLAGS.level_name} ({type(e).__name__}"
            + (f": {detail})" if detail else ")")) from None
    try:
        obs_spec = types.observation_spec(probe)
        num_actions = types.num_actions_of(probe)
    finally:
        probe.close()
    if FLAGS.jit_compile and "instruction" in obs_spec:
        raise UsageError(f"--jit_compile cannot compile a learner for "
                         f"{FLAGS.level_name}: its observations hold text, "
                         "which XLA has no operations for")
    agent = agents.AgentConfig(
        torso=get("agent"), num_actions=num_actions,
        use_lstm=get("use_lstm"),
        use_instruction="instruction" in obs_spec)
    batch_size = get("batch_size")
    actor_config = _from_flags(
        config_lib.ActorConfig, get, level_set=level_set, agent=agent,
        observation_spec=obs_spec,
        queue_capacity=FLAGS.queue_capacity or batch_size)
    learner_config = _from_flags(config_lib.LearnerConfig, get)
    logdir = FLAGS.logdir or os.path.join(
        "logs", re.sub(r"[^A-Za-z0-9_.-]+", "_", FLAGS.level_name))
    hosts = _roles()
    if FLAGS.job_name == "learner" and len(hosts) > 1 and FLAGS.task > 0:
        # Learner 0 checkpoints; the others only log, beside it.
        logdir = os.path.join(logdir, f"learner_{FLAGS.task}")
    config = _from_flags(
        config_lib.TrainConfig, get, logdir=logdir, actor=actor_config,
        learner=learner_config, spawn_actors=not FLAGS.job_name,
        learner_address=(hosts[0] if len(hosts) == 1
                         else FLAGS.learner_address),
        learner_hosts=tuple(hosts))
    if FLAGS.mode == "train" and FLAGS.job_name != "actor":
        config_lib.check_listening(config)  # Before any server starts.
    return config


def _restore_agent(config):
    from impala_tf.runtime import checkpoints
    from impala_tf.runtime import runs

    run_dir = runs.RunDirectory(config.logdir)
    run_dir.check_compatible(config)
    if checkpoints.latest(run_dir.checkpoint_dir) is None:
        raise UsageError(f"--logdir {config.logdir} has no checkpoint; "
                         "train first")

    def restore(checkpoint):
        checkpoints.restore(checkpoint, run_dir.checkpoint_dir)

    return restore


def _tf_error_line(e):
    """The informative line of a TensorFlow error message."""
    lines = [l.strip() for l in str(e.message).splitlines() if l.strip()]
    useful = [l for l in lines if not l.startswith(
        ("Graph execution error", "Detected at node", "File ", "<stack",
         "[[", "Node:"))]
    return (max(useful, key=len) if useful else "")[:300]


def _run_actor(config):
    """--job_name=actor: act for the learner until it is done, exit 0."""
    import tensorflow as tf
    from impala_tf.runtime import actor as actor_lib
    from impala_tf.runtime import distributed
    address, learner_task, job = distributed.learner_for_actor(
        FLAGS.task, config.learner_address, config.learner_hosts)
    print(f"[impala] actor {FLAGS.task}: connecting to the learner at "
          f"{address}", flush=True)
    try:
        actor_lib.run_remote_actor(
            config.actor, FLAGS.task, address, learner_task, job,
            connect_timeout_s=config.actor.connect_timeout_s,
            log=lambda m: print(m, flush=True))
    except tf.errors.InvalidArgumentError as e:
        raise UsageError(
            f"actor {FLAGS.task} does not match the learner at {address}; "
            "give every role the same agent, level, unroll and batch flags ("
            + _tf_error_line(e) + ")") from None
    except (tf.errors.UnavailableError,
            tf.errors.DeadlineExceededError) as e:
        sys.stderr.write(
            f"error: actor {FLAGS.task} could not reach the learner at "
            f"{address} within {config.actor.connect_timeout_s:.0f}s "
            f"({type(e).__name__})\n")
        sys.stderr.flush()
        os._exit(1)  # pylint: disable=protected-access


def run(config, make_hooks=None):
    """Dispatches on --mode with a built config (`make_hooks`: for
    `trainer.train`)."""
    if FLAGS.mode == "train" and FLAGS.job_name == "actor":
        _run_actor(config)
    elif FLAGS.mode == "train":
        from impala_tf.runtime import trainer
        if FLAGS.num_actors < 1 and not FLAGS.job_name:
            raise UsageError("--num_actors must be at least 1 to train")
        trainer.train(config, make_hooks=make_hooks)
    elif FLAGS.mode == "test":
        from impala_tf.runtime import evaluate
        output = FLAGS.test_output or os.path.join(config.logdir,
                                                   "test_scores.csv")
        means = evaluate.evaluate(
            config.actor, _restore_agent(config), FLAGS.test_num_episodes,
            output, seed=FLAGS.seed + 10_000,
            num_action_repeats=config.learner.num_action_repeats)
        for level, mean in means.items():
            print(f"[impala] {level}: mean return {mean:.2f} over "
                  f"{FLAGS.test_num_episodes} episodes")
        print(f"[impala] per-episode scores written to {output}")
    else:
        import tensorflow as tf
        from impala_tf.runtime import export
        from impala_tf.runtime import trainer
        restore = _restore_agent(config)
        agent, _, _, _ = trainer.build(config)
        restore(tf.train.Checkpoint(agent=agent))
        export_dir = FLAGS.export_dir or os.path.join(config.logdir,
                                                      "saved_model")
        export.export_policy(agent, config.actor.observation_spec,
                             export_dir, inputs=export.describe_run(config))
        print(f"[impala] SavedModel written to {export_dir}; what it "
              f"expects: {export_dir}/assets/{export.INPUTS_ASSET}")


def _set_learner_threads():
    """Applies --learner_threads before TensorFlow starts its runtime."""
    if FLAGS.mode != "train" or FLAGS.job_name == "actor":
        return
    local = FLAGS.num_actors if not FLAGS.job_name else 0
    from impala_tf.runtime import trainer
    threads = trainer.learner_threads(FLAGS.learner_threads, local,
                                      len(os.sched_getaffinity(0)))
    if threads is not None:
        import tensorflow as tf
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)


def main(argv, make_hooks=None):
    """The entry point (`make_hooks`: for `trainer.train`, `pbt`)."""
    logging.set_verbosity(logging.WARNING)
    if len(argv) > 1:
        fail(f"unexpected arguments {' '.join(argv[1:])!r}")
    _set_learner_threads()
    from impala_tf.runtime import runs
    from impala_tf.envs import registry
    known = (UsageError, registry.LevelError, runs.RunError)
    try:
        from impala_tf.envs import dmlab
        known += (dmlab.DeepMindLabNotInstalledError,)
    except ImportError:
        pass
    try:
        config = build_configs()
    except known as e:
        fail(str(e))
    except ValueError as e:  # Environment or flag values that do not fit.
        fail(str(e).splitlines()[0] if str(e) else repr(e))
    except KeyboardInterrupt:
        _interrupted()
    from impala_tf.algorithm import replay  # TensorFlow is loaded by now.
    from impala_tf.runtime import supervisor
    try:
        run(config, make_hooks)
    except known + (replay.ReplayError,) as e:
        fail(str(e))
    except supervisor.ActorsFailing as e:  # Checkpoint saved; not bad input.
        sys.stderr.write(f"error: {e}\n")
        sys.stderr.flush()
        os._exit(1)  # pylint: disable=protected-access
    except KeyboardInterrupt:  # Ctrl-C before training set its handler.
        _interrupted()


if __name__ == "__main__":
    app.run(main, flags_parser=parse_flags)
