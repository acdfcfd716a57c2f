r"""The trainer's entry point: train, test or export a run (`--mode`).

    impala-tf train|test|export [flags]
    python -m impala_tf.cli.experiment --mode=train|test|export [flags]

With no flags it trains the paper's shallow feed-forward agent on Atari
Pong (Table G.1 hyperparameters). Flags keep the official release's names
(`cli.flags`); a flag left unset takes the default of the level's suite
(Atari, DMLab or a user environment, see `envs.registry`). Bad input prints
one sentence and exits with status 2.
"""

import os

# Quiet TensorFlow's C++ start-up chatter unless the user asked otherwise
# (set before TensorFlow is imported; actor processes inherit it). Without a
# GPU driver, also hide the harmless "failed call to cuInit" error line.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL",
                      "2" if os.path.exists("/dev/nvidiactl") else "3")

# pylint: disable=g-import-not-at-top
from absl import app
from absl import flags
from absl import logging

from impala_tf import errors
from impala_tf.cli import flags as train_flags
from impala_tf.cli import train_config
from impala_tf.errors import UsageError
# pylint: enable=g-import-not-at-top
# pylint: disable=import-outside-toplevel  TensorFlow loads when needed.

FLAGS = flags.FLAGS


def define_flags(flag_values=FLAGS):
    """Defines the trainer's flags in `flag_values` and lists them in the
    running program's --help; returns `flag_values`."""
    train_flags.define_train_flags(flag_values)
    flags.adopt_module_key_flags(train_flags, flag_values)
    return flag_values


def parse_flags(argv, flag_values=FLAGS):
    """absl's parser, but one sentence and status 2 on bad flags."""
    try:
        return flag_values(argv)
    except flags.Error as e:
        errors.fail(errors.first_line(e), hard=True)


def _interrupted():
    errors.fail("interrupted while starting; nothing was trained or saved",
                status=130, hard=True)


def run_guarded(build, run):
    """`run(build())` as an entry point's body (this one's, and a
    population-based training member's, `cli.pbt`): bad input
    (`errors.UsageError`, which the level's, the run directory's and
    replay's errors are, or a ValueError while building) prints one
    sentence and exits with status 2; actors that keep failing exit 1 (a
    checkpoint is saved: not bad input); Ctrl-C before training set its own
    handler exits 130.

    Args:
      build: callable() -> config.TrainConfig (reads no global state the
        caller did not give it).
      run: callable(config).
    """
    try:
        config = build()
    except UsageError as e:
        errors.fail(str(e), hard=True)
    except ValueError as e:  # Environment or flag values that do not fit.
        errors.fail(errors.first_line(e), hard=True)
    except KeyboardInterrupt:
        _interrupted()
    from impala_tf.runtime import supervisor  # TensorFlow is loaded by now.
    try:
        run(config)
    except UsageError as e:
        errors.fail(str(e), hard=True)
    except supervisor.ActorsFailing as e:
        errors.fail(str(e), status=1, hard=True)
    except KeyboardInterrupt:  # Ctrl-C before training set its handler.
        _interrupted()


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
    task = config.task
    address, learner_task, job = distributed.learner_for_actor(
        task, config.learner_address, config.learner_hosts)
    print(f"[impala] actor {task}: connecting to the learner at "
          f"{address}", flush=True)
    try:
        actor_lib.run_remote_actor(
            config.actor, task, address, learner_task, job,
            connect_timeout_s=config.actor.connect_timeout_s,
            log=lambda m: print(m, flush=True))
    except tf.errors.InvalidArgumentError as e:
        raise UsageError(
            f"actor {task} does not match the learner at {address}; "
            "give every role the same agent, level, unroll and batch flags ("
            + _tf_error_line(e) + ")") from None
    except (tf.errors.UnavailableError,
            tf.errors.DeadlineExceededError) as e:
        errors.fail(
            f"actor {task} could not reach the learner at {address} within "
            f"{config.actor.connect_timeout_s:.0f}s ({type(e).__name__})",
            status=1, hard=True)


def _test(config, flag_values):
    """--mode=test: evaluate the latest checkpoint, scores to a CSV."""
    from impala_tf.runtime import evaluate
    from impala_tf.runtime import score_files
    fv = flag_values
    output = fv.test_output or os.path.join(config.logdir,
                                            score_files.SCORES_FILE_NAME)
    means = evaluate.evaluate(
        config.actor, _restore_agent(config), fv.test_num_episodes,
        output, seed=fv.seed + 10_000,
        num_action_repeats=config.learner.num_action_repeats)
    for level, mean in means.items():
        print(f"[impala] {level}: mean return {mean:.2f} over "
              f"{fv.test_num_episodes} episodes")
    print(f"[impala] per-episode scores written to {output}")


def _export(config, flag_values):
    """--mode=export: the latest checkpoint's policy as a SavedModel."""
  
    import tensorflow as tf
    from impala_tf.runtime import export
    from impala_tf.runtime import trainer
    restore = _restore_agent(config)
    agent, _, _, _ = trainer.build(config)
    restore(tf.train.Checkpoint(agent=agent))
    export_dir = flag_values.export_dir or os.path.join(config.logdir,
                                                        "saved_model")
    export.export_policy(agent, config.actor.observation_spec,
                         export_dir, inputs=export.describe_run(config))
    print(f"[impala] SavedModel written to {export_dir}; what it "
          f"expects: {export_dir}/assets/{export.INPUTS_ASSET}")


def run(config, flag_values):
    """Runs a built config as --mode (and --job_name) of `flag_values` say:
    train (a learner with its actors, or a remote actor), test or export."""
    mode = flag_values.mode
    if mode == "train" and flag_values.job_name == "actor":
        _run_actor(config)
    elif mode == "train":
        from impala_tf.runtime import trainer
        trainer.train(config)
    elif mode == "test":
        _test(config, flag_values)
    else:
        _export(config, flag_values)


def set_learner_threads(flag_values):
    """Applies --learner_threads (or the CPUs local actors leave free) to
    TensorFlow before its runtime starts; nothing for an actor, test or
    export."""
    fv = flag_values
    if fv.mode != "train" or fv.job_name == "actor":
        return
    local = fv.num_actors if not fv.job_name else 0
    from impala_tf.runtime import trainer
    threads = trainer.learner_threads(fv.learner_threads, local,
                                      len(os.sched_getaffinity(0)))
    if threads is not None:
        import tensorflow as tf
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)


def main(argv):
    """absl main of `python -m impala_tf.cli.experiment` (flags parsed in
    FLAGS by `define_flags` and `parse_flags`)."""
    logging.set_verbosity(logging.WARNING)
    if len(argv) > 1:
        errors.fail(f"unexpected arguments {' '.join(argv[1:])!r}", hard=True)
    set_learner_threads(FLAGS)
    run_guarded(lambda: train_config.build(FLAGS),
                lambda config: run(config, FLAGS))


if __name__ == "__main__":
    define_flags()
    app.run(main, flags_parser=parse_flags)
