"""The learner process of a training run: server, actors, loop, checkpoints.

`train(config)`:
  1. checks the log directory and any earlier run in it (`runs.RunDirectory`);
  2. builds the agent and the learner and restores the latest checkpoint if
     there is one ("resumed from ... at N frames");
  3. serves the trajectory queue and the weights (`transport`) and starts
     `num_actors` actor processes under a supervisor that restarts any that
     die;
  4. trains in a background thread — dequeue a batch (tf.data prefetch), one
     `tf.function` step — while the main thread supervises actors and
     handles SIGINT/SIGTERM;
  5. logs progress, checkpoints every `checkpoint_interval_s` and at exit,
     stops the actors and returns the last progress record.
"""

import dataclasses
import signal
import sys
import threading
import time

import numpy as np
import tensorflow as tf

from impala_tf import actor as actor_lib
from impala_tf import learner as learner_lib
from impala_tf import progress
from impala_tf import runs
from impala_tf import supervisor as supervisor_lib
from impala_tf import transport


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    logdir: str
    actor: actor_lib.ActorConfig
    learner: learner_lib.LearnerConfig
    num_actors: int
    learner_address: str  # "host:port"; port 0 picks a free port.
    spawn_actors: bool = True
    checkpoint_interval_s: float = 600.0
    log_interval_s: float = 10.0
    jit_compile: bool = False
    prefetch: int = 1


def _address_with_port(address):
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise ValueError(f"learner address '{address}' is not host:port")
    if int(port) == 0:
        port = str(transport.pick_free_port())
    return f"{host}:{port}"


def build(config):
    """Agent, learner and batch spec, variables created (no server yet)."""
    agent = config.actor.agent.build()
    state_spec = agent.state_spec(None)
    traj_spec = actor_lib.trajectory_spec(
        config.actor.agent, config.actor.observation_spec,
        config.actor.unroll_length, state_spec)
    learner = learner_lib.Learner(agent, config.learner)
    batch_spec = tf.nest.map_structure(
        lambda s: tf.TensorSpec([config.learner.batch_size]
                                + s.shape.as_list(), s.dtype), traj_spec)
    learner.build(batch_spec)
    return agent, learner, traj_spec


def make_checkpoint(learner):
    return tf.train.Checkpoint(
        agent=learner.agent, optimizer=learner.optimizer,
        num_steps=learner.num_steps, num_frames=learner.num_frames,
        nonfinite_skips=learner.nonfinite_skips)


def train(config, console=sys.stdout):
    """Runs training to `total_environment_frames`; returns the last record."""
    say = (lambda msg: (console.write(msg + "\n"), console.flush())
           if console is not None else (lambda msg: None))
    run_dir = runs.RunDirectory(config.logdir)
    run_dir.check_compatible(config)
    address = _address_with_port(config.learner_address)
    transport.start_learner_server(address)
    agent, learner, traj_spec = build(config)
    ckpt = make_checkpoint(learner)
    manager = tf.train.CheckpointManager(ckpt, run_dir.checkpoint_dir,
                                         max_to_keep=3)
    restored = run_dir.restore(ckpt, manager)
    if restored:
        say(f"[impala] resumed from {restored} at "
            f"{int(learner.num_frames.numpy()):,} frames "
            f"(step {int(learner.num_steps.numpy()):,})")
    run_dir.write_config(config)

    server = transport.LearnerTransport(
        address, traj_spec, agent.trainable_variables,
        capacity=config.actor.queue_capacity)
    server.publish(agent.trainable_variables, learner.num_steps)
    learner._publish = server.publish  # pylint: disable=protected-access
    say(f"[impala] learner serving on {address} (TensorFlow gRPC, no "
        "authentication: keep this port on a private network)")

    actors = supervisor_lib.ActorSupervisor(
        config.actor, address, config.num_actors,
        spawn=config.spawn_actors, log=say)
    logger = progress.ProgressLogger(
        config.logdir, config.actor.level_set.levels,
        config.learner.num_action_repeats,
        config.learner.total_environment_frames,
        interval_s=config.log_interval_s, console=console,
        extra=actors.stats)

    dataset = server.dataset(config.learner.batch_size, config.prefetch)
    step_fn = tf.function(learner.train_step, jit_compile=False)

    @tf.function
    def next_step(iterator):
        return step_fn(next(iterator))

    stop = threading.Event()
    errors = []

    def loop():
        last_ckpt = time.time()
        try:
            iterator = iter(dataset)
            total = config.learner.total_environment_frames
            while not stop.is_set() and int(learner.num_frames.numpy()) < total:
                out = next_step(iterator)
                logger.add({k: v.numpy() for k, v in out.items()})
                if logger.due():
                    logger.log()
                if time.time() - last_ckpt >= config.checkpoint_interval_s:
                    manager.save(checkpoint_number=learner.num_steps)
                    last_ckpt = time.time()
        except (tf.errors.OutOfRangeError, tf.errors.CancelledError,
                StopIteration):
            pass  # The queue was closed: a requested stop.
        except Exception as e:  # pylint: disable=broad-except
            errors.append(e)

    def on_signal(signum, _frame):
        say(f"[impala] {signal.Signals(signum).name}: stopping after the "
            "current step and saving a checkpoint")
        stop.set()
        server.close()

    previous = {s: signal.signal(s, on_signal)
                for s in (signal.SIGINT, signal.SIGTERM)}
    thread = threading.Thread(target=loop, name="learner", daemon=True)
    try:
        actors.start()
        thread.start()
        while thread.is_alive():
            thread.join(0.5)
            actors.poll()
    finally:
        stop.set()
        server.close()
        thread.join(60)
        actors.stop()
        for s, h in previous.items():
            signal.signal(s, h)
    if errors:
        raise errors[0]
    path = manager.save(checkpoint_number=learner.num_steps)
    record = logger.log()
    logger.close()
    say(f"[impala] saved {path} at {int(learner.num_frames.numpy()):,} "
        "frames")
    return record
