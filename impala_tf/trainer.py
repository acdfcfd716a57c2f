"""The learner process of a training run: server, actors, loop, checkpoints.

`train(config)`:
  1. checks the log directory and any earlier run in it (`runs.RunDirectory`);
  2. builds the agent and the learner and restores the latest checkpoint if
     there is one ("resumed from ... at N frames");
  3. serves the trajectory queue and the weights (`transport`) and starts
     `num_actors` actor processes under a supervisor that restarts any that
     die;
  4. trains in a background thread — take a batch (from local actors'
     shared memory, `local_transport`, or the gRPC queue through tf.data;
     where a GPU is visible, copied onto it a batch ahead, `prefetch`), one
     `Learner.step_function` step (XLA-compiled by default where a GPU is
     visible, `--jit_compile`) — while the main thread supervises actors
     and handles SIGINT/SIGTERM;
  5. logs progress, checkpoints every `checkpoint_interval_s` and at exit,
     stops the actors and returns the last progress record.

With `spawn_actors=False` it waits for remote actors (`--job_name=actor`)
and counts them from their heartbeats (`distributed.ActorCounter`); with
several `learner_hosts` it is one of K synchronous learners
(`distributed.LearnerCluster`): gradients summed every step, learner 0
checkpoints, all stop after the same step.
"""

import functools
import signal
import sys
import threading
import time

import numpy as np
import tensorflow as tf

from impala_tf import actor as actor_lib
from impala_tf import config as config_lib
from impala_tf import distributed
from impala_tf import learner as learner_lib
from impala_tf import local_transport
from impala_tf import prefetch
from impala_tf import progress
from impala_tf import runs
from impala_tf import supervisor as supervisor_lib
from impala_tf import transport


TrainConfig = config_lib.TrainConfig  # Where it is written: config.py.


def learner_threads(requested, num_local_actors, num_cpus):
    """Threads for the learner process: `requested`, or the CPUs left to it
    by `num_local_actors` single-threaded actor processes (at least 1), or
    None (TensorFlow's default, every CPU) when no actor runs here.

    On 2 CPUs with 2 local actors one learner thread is as fast or faster
    than two (benchmarks/README.md): a second thread only contends with the
    actors for the same cores.
    """
    if requested:
        return requested
    if num_local_actors <= 0:
        return None
    return max(1, num_cpus - num_local_actors)


def _slot_factory(config, cluster, traj_spec):
    """`SharedSlots` maker for local actors, or None (gRPC queue)."""
    if (config.local_transport != "shared_memory" or not config.spawn_actors
            or cluster is not None or config.num_actors <= 0
            or not local_transport.supported(traj_spec)):
        return None
    n = config.actor.envs_per_actor
    num_slots = local_transport.num_slots_for(config.actor.queue_capacity, n,
                                              config.num_actors)
    return functools.partial(local_transport.SharedSlots, traj_spec, n,
                             num_slots)


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
    learner = learner_lib.Learner(
        agent, config.learner, num_learners=max(1, len(config.learner_hosts)))
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


def weights_finite(learner):
    """True if every float variable (weights, optimizer slots) is finite."""
    checks = [tf.reduce_all(tf.math.is_finite(v)) for v in learner.variables
              if v.dtype.is_floating]
    return bool(tf.reduce_all(checks).numpy()) if checks else True


def save_checkpoint(manager, learner, say):
    """Saves unless a weight is not finite (then keeps the last good one).

    `CheckpointManager` writes the files under temporary names and renames
    them, then atomically replaces the 'checkpoint' state file, so a process
    killed mid-save leaves the previous checkpoint current.
    """
    if not weights_finite(learner):
        say("[impala] NOT saving a checkpoint: some weights are not finite; "
            f"the last good one is {manager.latest_checkpoint}")
        return None
    return manager.save(checkpoint_number=learner.num_steps)


class _NonfiniteReporter:
    """One line when updates are skipped as non-finite (at most every 10 s)."""

    def __init__(self, say, start, interval_s=10.0):
        self._say, self._interval = say, interval_s
        self._reported, self._last = start, -float("inf")

    def check(self, out):
        skips = int(out["nonfinite_skips"])
        if skips <= self._reported or (
                time.time() - self._last < self._interval):
            return
        self._say(
            f"[impala] step {int(out['num_steps']):,}: non-finite loss or "
            f"gradient (total_loss={float(out.get('total_loss', np.nan)):.4g},"
            f" grad_norm={float(out['grad_norm']):.4g}); update skipped, "
            f"weights unchanged ({skips} skipped so far, "
            f"{skips - self._reported} since the last report)")
        self._reported, self._last = skips, time.time()


def train(config, console=sys.stdout):
    """Runs training to `total_environment_frames`; returns the last record."""
    say = (lambda msg: (console.write(msg + "\n"), console.flush())
           if console is not None else (lambda msg: None))
    run_dir = runs.RunDirectory(config.logdir)
    run_dir.check_compatible(config)
    cluster = None
    if len(config.learner_hosts) > 1:
        say(f"[impala] learner {config.task} of {len(config.learner_hosts)}"
            ": waiting for all learners at " + ",".join(config.learner_hosts))
        cluster = distributed.LearnerCluster(config.learner_hosts,
                                             config.task)
        address = cluster.address
    else:
        address = _address_with_port(config.learner_address)
        transport.start_learner_server(address)
    chief = cluster is None or cluster.is_chief
    agent, learner, traj_spec = build(config)
    ckpt = make_checkpoint(learner)
    restored = run_dir.restore(ckpt)  # First: it words a bad state file.
    manager = tf.train.CheckpointManager(ckpt, run_dir.checkpoint_dir,
                                         max_to_keep=3)
    if restored:
        say(f"[impala] resumed from {restored} at "
            f"{int(learner.num_frames.numpy()):,} frames "
            f"(step {int(learner.num_steps.numpy()):,})")
    run_dir.repair_progress()
    run_dir.write_config(config)
    if cluster is not None:
        cluster.broadcast(learner.variables)  # Learner 0's, everywhere.

    server = transport.LearnerTransport(
        address, traj_spec, agent.trainable_variables,
        capacity=config.actor.queue_capacity,
        task=config.task if cluster else 0,
        job=cluster.job if cluster else transport.LEARNER_JOB)
    server.publish(agent.trainable_variables, learner.num_steps)
    learner._publish = server.publish  # pylint: disable=protected-access
    say(f"[impala] learner serving on {address} (TensorFlow gRPC, no "
        "authentication: keep this port on a private network)")
    counter = None
    if not config.spawn_actors:
        counter = distributed.ActorCounter(
            server.actor_unrolls, config.actor_timeout_s, log=say)
        say("[impala] waiting for actors: --job_name=actor " + (
            f"--learner_hosts={','.join(config.learner_hosts)} --task=i, "
            f"i % {len(config.learner_hosts)} == {config.task}" if cluster
            else f"--learner_address={address}"))

    make_slots = _slot_factory(config, cluster, traj_spec)
    actors = supervisor_lib.ActorSupervisor(
        config.actor, address, config.num_actors,
        spawn=config.spawn_actors, log=say,
        env_timeout_s=config.env_timeout_s, make_slots=make_slots)
    receiver = None
    if actors.slots is not None:
        receiver = local_transport.SlotReceiver(actors.slots, traj_spec)
        say(f"[impala] local actors send trajectories through shared memory "
            f"({len(actors.slots)} x {actors.slots[0].num_slots} slot(s) of "
            f"{actors.slots[0].slot_bytes / 2 ** 20:.0f} MiB)")

    def close_inputs():
        server.close()
        if receiver is not None:
            receiver.close()

    logger = progress.ProgressLogger(
        config.logdir, config.actor.level_set.levels,
        config.learner.num_action_repeats,
        config.learner.total_environment_frames,
        interval_s=config.log_interval_s,
        console=console if chief else None,  # Learner 0 speaks for all.
        extra=(actors.stats if counter is None
               else lambda: dict(actors.stats(), **counter.stats())),
        suite_scores=config.actor.level_set.suite_scores)

    gpu = bool(tf.config.list_physical_devices("GPU"))
    text = "instruction" in config.actor.observation_spec
    jit = learner_lib.resolve_jit_compile(config.jit_compile, gpu, text)
    why = ("synchronous learners" if cluster is not None  # Not under XLA.
           else "text observations" if text and config.jit_compile is None
           else None)
    say(learner_lib.jit_compile_line(jit and cluster is None,
                                     config.jit_compile, why))
    step_fn = learner.step_function(jit)
    device = "/GPU:0" if gpu else None  # Batches go there ahead of steps.

    @tf.function
    def next_step(iterator):
        if cluster is not None:
            return cluster.step(learner, next(iterator))
        return step_fn(next(iterator))

    def batches():
        """(iterator of batches, its step function)."""
        if receiver is not None:
            it = receiver.batches(config.learner.batch_size, config.prefetch)
            if device:
                it = prefetch.prefetch_to_device(it, device, config.prefetch)
            return it, lambda it: step_fn(next(it))
        dataset = server.dataset(config.learner.batch_size, config.prefetch)
        if device and cluster is None:
            dataset = prefetch.prefetch_dataset_to_device(dataset, device,
                                                          config.prefetch)
        return iter(dataset), next_step

    stop = threading.Event()
    errors = []
    steps_run = [0]  # Steps taken by this process.
    nonfinite = _NonfiniteReporter(say, int(learner.nonfinite_skips.numpy()))

    def loop():
        last_ckpt = time.time()
        try:
            iterator, take_step = batches()
            total = config.learner.total_environment_frames
            while not stop.is_set() and int(learner.num_frames.numpy()) < total:
                out = take_step(iterator)
                out = {k: v.numpy() for k, v in out.items()}
                logger.add(out)
                steps_run[0] += 1
                nonfinite.check(out)
                if logger.due():
                    logger.log()
                if out.get("stop_votes", 0) > 0:  # All stop after this step.
                    if not cluster.stop_requested:
                        say("[impala] another learner is stopping; stopping "
                            "after the same step")
                    break
                if chief and (time.time() - last_ckpt
                              >= config.checkpoint_interval_s):
                    path = save_checkpoint(manager, learner, say)
                    if path:
                        say(f"[impala] checkpoint {path} at "
                            f"{int(learner.num_frames.numpy()):,} frames")
                    last_ckpt = time.time()
        except (tf.errors.OutOfRangeError, tf.errors.CancelledError,
                StopIteration):
            pass  # The queue was closed: a requested stop.
        except tf.errors.OpError as e:
            # Closing the queue under a waiting dequeue surfaces through
            # tf.data as InvalidArgumentError ("Function invocation produced
            # OutOfRangeError"); the step's updates never started.
            if not stop.is_set():
                errors.append(e)
        except Exception as e:  # pylint: disable=broad-except
            errors.append(e)
        finally:
            stop.set()

    def on_signal(signum, _frame):
        name = signal.Signals(signum).name
        if stop.is_set():
            say(f"[impala] {name}: already stopping")
            return
        say(f"[impala] {name}: stopping after the current step and saving a "
            "checkpoint")
        if cluster is not None and not cluster.stop_requested:
            # All learners stop after the same step (a second signal, or
            # 60 s without a step, stops this one alone).
            cluster.request_stop()
            timer = threading.Timer(60.0, lambda: (stop.set(),
                                                   close_inputs()))
            timer.daemon = True
            timer.start()
            return
        stop.set()
        actors.stop_restarting()
        close_inputs()

    previous = {s: signal.signal(s, on_signal)
                for s in (signal.SIGINT, signal.SIGTERM)}
    thread = threading.Thread(target=loop, name="learner", daemon=True)
    failure = None
    try:
        try:
            actors.start()
            thread.start()
            while thread.is_alive():
                thread.join(0.5)
                if not stop.is_set():
                    actors.poll()
                    if counter is not None:
                        counter.poll()
        except supervisor_lib.ActorsFailing as e:
            failure = e
        finally:
            stop.set()
            actors.stop_restarting()
            close_inputs()
            thread.join(60)
            if counter is not None:
                counter.wait_quiet()  # Let remote actors see the close.
            actors.stop()
        if errors:
            raise errors[0]
        path = save_checkpoint(manager, learner, say) if chief else None
        # No step in this run (stopped while starting): no record claiming 0.
        record = logger.log() if steps_run[0] else logger.last_record
        logger.close()
        if path:
            say(f"[impala] saved {path} at "
                f"{int(learner.num_frames.numpy()):,} frames")
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
    if failure is not None:
        raise failure
    return record
