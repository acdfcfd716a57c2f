"""The learner process of a training run: connects the parts.

`train(config)`:
  1. checks that a replay buffer fits in memory (`check_replay`), the log
     directory and any earlier run in it (`runs.RunDirectory`);
  2. where the run needs one (`TrainConfig.needs_server`: remote actors,
     synchronous learners, --local_transport=grpc) and was allowed to
     (--listen_on_all_interfaces), starts the TF server (`transport.grpc`);
     a learner whose actors are all its own processes starts none and
     opens no port. Builds the agent, the learner and what publishes its
     weights (`shared_weights.WeightWriter` for local actors, else the
     `grpc.LearnerServer`), and
     restores the latest checkpoint if there is one (`checkpoints`:
     "resumed from ... at N frames"; what a resumed run trains with, the
     flags' or the checkpoint's hyperparameters and the learning-rate
     horizon it started with, is decided in `resume`);
  3. starts `num_actors` actor processes under a supervisor that restarts
     any that die (`supervisor`); trajectories, weights and the end of the
     run travel through shared memory (`transport.shared_memory`), or with
     --local_transport=grpc through the gRPC queue and weights;
  4. runs the `learner_loop.LearnerLoop` (take a batch — mixed with
     replayed trajectories under `--replay_proportion`, `replay`; where a GPU is
     visible, copied onto it a batch ahead, `prefetch` — one
     `Learner.step_function` step, XLA-compiled by default where a GPU is
     visible, `--jit_compile`; log; checkpoint) in a background thread
     while the main thread supervises actors; SIGINT/SIGTERM stop the loop;
  5. saves the last checkpoint, stops the actors and returns the last
     progress record.

With `spawn_actors=False` it waits for remote actors (`--job_name=actor`)
and counts them from their heartbeats (`distributed.ActorCounter`); with
several `learner_hosts` it is one of K synchronous learners
(`distributed.LearnerCluster`): gradients summed every step, learner 0
checkpoints, all stop after the same step.
"""

import dataclasses
import functools
import signal
import sys

import tensorflow as tf

from impala_tf.runtime import actor as actor_lib
from impala_tf.runtime.baselines import mode as mode_lib
from impala_tf.runtime import checkpoints
from impala_tf import config as config_lib
from impala_tf.runtime import distributed
from impala_tf.algorithm import learner as learner_lib
from impala_tf.runtime import learner_loop
from impala_tf.agents import policy
from impala_tf.runtime import precision as precision_lib
from impala_tf.runtime import prefetch
from impala_tf.runtime import progress
from impala_tf.algorithm import replay
from impala_tf.runtime import resume
from impala_tf.runtime import runs
from impala_tf.runtime import supervisor as supervisor_lib
from impala_tf import types
from impala_tf.transport import grpc
from impala_tf.transport import shared_memory
from impala_tf.transport import shared_weights


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


def _address_with_port(address):
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise ValueError(f"learner address '{address}' is not host:port")
    if int(port) == 0:
        port = str(grpc.pick_free_port())
    return f"{host}:{port}"


def _start_server(config, say):
    """Starts this process's TF server (before any variable) where the run
    needs one (`TrainConfig.needs_server`; ValueError without
    `listen_on_all_interfaces`: TF's server binds every interface). Returns
    (address or None: no server, `distributed.LearnerCluster` or None)."""
    config_lib.check_listening(config)
    if not config.needs_server:
        if config.num_actors < 1:
            raise ValueError("a learner without remote actors needs at "
                             "least one local actor (--num_actors)")
        return None, None
    if len(config.learner_hosts) > 1:
        say(f"[impala] learner {config.task} of {len(config.learner_hosts)}"
            ": waiting for all learners at " + ",".join(config.learner_hosts))
        cluster = distributed.LearnerCluster(config.learner_hosts,
                                             config.task)
        return cluster.address, cluster
    address = _address_with_port(config.learner_address)
    grpc.start_learner_server(address)
    return address, None


def build(config, make_publisher=None):
    """(agent, learner, trajectory spec, publisher), variables created.

    make_publisher: callable(trajectory spec, variable specs) -> a
    `transport.WeightPublisher` that the learner publishes each update to
    (the gRPC server), or None (no publication: tests, tools).
    """
    agent = actor_lib.build_agent(config.actor)
    traj_spec = actor_lib.trajectory_spec(config.actor, agent)
    publisher = (make_publisher(traj_spec, policy.variable_specs(agent))
                 if make_publisher is not None else None)
    learner = learner_lib.Learner(
        agent, config.learner,
        publish=publisher.publish if publisher is not None else None)
    learner.build(types.batch_spec(traj_spec, config.learner.batch_size))
    return agent, learner, traj_spec, publisher


def _server_maker(config, cluster):
    """make_publisher for `build`: a `shared_weights.WeightWriter` into new
    `SharedWeights` where no server runs (local actors only), else this
    learner's `grpc.LearnerServer`."""
    if not config.needs_server:
        return lambda traj_spec, variable_specs: shared_weights.WeightWriter(
            shared_weights.SharedWeights(variable_specs))
    return functools.partial(
        grpc.LearnerServer, capacity=config.actor.queue_capacity,
        task=config.task if cluster else 0,
        job=cluster.job if cluster else grpc.LEARNER_JOB)


def shared_memory_slots(config, traj_spec):
    """`SharedSlots` maker for each local actor (callable(multiprocessing
    context)), or None where the run has a gRPC server instead
    (`TrainConfig.needs_server`: --local_transport=grpc, remote or
    synchronous learners)."""
    if config.needs_server or config.num_actors <= 0:
        return None
    n = config.actor.envs_per_actor
    num_slots = shared_memory.num_slots_for(config.actor.queue_capacity, n,
                                            config.num_actors)
    return functools.partial(shared_memory.SharedSlots, traj_spec, n,
                             num_slots)


def _batch_source(config, server, slots, traj_spec, cluster, say):
    """The learner's `transport.BatchSource`: the local actors' shared
    memory if they have some, else the gRPC queue; with replay on, mixed
    with replayed trajectories (`replay.ReplayBatchSource`); where a GPU is
    visible (and the learner steps alone), copied onto it a batch ahead.
    Returns (batch source, the replay source or None)."""
    batch_size, ahead = config.learner.batch_size, config.prefetch
    mixer = None
    if config.learner.replay_proportion > 0:
        k = replay.replayed_per_batch(config.learner.replay_proportion,
                                      batch_size)
        batch_size -= k  # Read from the actors per batch once warm.
    if slots is None:
        batches = server.batches(batch_size, ahead)
    else:
        say(f"[impala] local actors send trajectories through shared memory "
            f"({len(slots)} x {slots[0].num_slots} slot(s) of "
            f"{slots[0].slot_bytes / 2 ** 20:.0f} MiB)")
        batches = shared_memory.SlotReceiver(slots, traj_spec).batches(
            batch_size, ahead)
    if config.learner.replay_proportion > 0:
        mixer = batches = replay.ReplayBatchSource(
            batches, traj_spec, config.learner.batch_size,
            config.learner.replay_proportion,
            config.learner.replay_capacity,
            seed=config.actor.seed + 7919 * config.task)
    if _gpu_visible() and cluster is None:
        batches = prefetch.prefetch_to_device(batches, "/GPU:0", ahead)
    return batches, mixer


def check_replay(config, say):
    """Refuses (`replay.ReplayError`) replay settings that cannot work here,
    before anything is written; says what the buffer will take."""
    c = config.learner
    if c.replay_proportion <= 0:
        return
    k = replay.replayed_per_batch(c.replay_proportion, c.batch_size)
    # An agent without variables gives the spec: none may exist before the
    # TF server starts (`_start_server`), and `build` makes the real one.
    traj_spec = actor_lib.trajectory_spec(config.actor,
                                          config.actor.agent.build())
    typical, most = replay.check_fits(
        traj_spec, c.replay_capacity,
        stacked_frames=config.actor.level_set.kind == "atari")
    say(f"[impala] replay: {k} of {c.batch_size} trajectories per batch "
        f"from a buffer of {c.replay_capacity:,} (FIFO, not checkpointed): "
        f"about {typical / 2 ** 30:.2f} GiB, at most {most / 2 ** 30:.2f} "
        "GiB; batches are all fresh until it holds a batch")


def _gpu_visible():
    return bool(tf.config.list_physical_devices("GPU"))


def _jit_compile(config, cluster, say):
    """Whether the learner step is XLA-compiled (`resolve_jit_compile`);
    says so in one line."""
    text = "instruction" in config.actor.observation_spec
    jit = learner_lib.resolve_jit_compile(config.jit_compile, _gpu_visible(),
                                          text)
    why = ("synchronous learners" if cluster is not None  # Not under XLA.
           else "text observations" if text and config.jit_compile is None
           else None)
    say(learner_lib.jit_compile_line(jit and cluster is None,
                                     config.jit_compile, why))
    return jit


def _resolve_horizon(config, run_dir, say):
    """`config` with the learning-rate horizon of this run fixed
    (`resume.resolve_horizon`: a resumed run keeps the one it started
    with unless --learning_rate_decay_frames is given)."""
    resuming = checkpoints.latest(run_dir.checkpoint_dir) is not None
    learner, note = resume.resolve_horizon(
        config.learner, run_dir.saved_config(), resuming)
    if note:
        say(note)
    return dataclasses.replace(config, learner=learner)


def _restore(config, run_dir, learner, cluster, say, episodes):
    """Restores the latest checkpoint (learner 0's everywhere with a
    cluster), with `episodes` (the `progress.EpisodeWindows` the progress
    records' returns are over), and settles the hyperparameters it trains
    with (`resume.reconcile_hyperparameters`); records them in
    run_config.json. Returns (the `checkpoints.Checkpoints` that saves the
    run, the config trained with)."""
    saver = checkpoints.Checkpoints(run_dir.checkpoint_dir, learner, say,
                                    episodes=episodes)
    restored = saver.restore()  # First: it words a bad state file.
    if restored:
        if not saver.episodes_restored:
            returns = "episode returns start afresh (none in the checkpoint)"
        elif episodes.size():
            returns = (f"mean return {episodes.mean():.2f} over the last "
                       f"{episodes.size()} of {episodes.episodes:,} "
                       "episodes")
        else:
            returns = "no episode had finished"
        say(f"[impala] resumed from {restored} at "
            f"{int(learner.num_frames.numpy()):,} frames "
            f"(step {int(learner.num_steps.numpy()):,}); {returns}")
        learner_config, note = resume.reconcile_hyperparameters(
            config.learner, learner, config.resume_hyperparameters)
        if note:
            say(note)
        config = dataclasses.replace(config, learner=learner_config)
    run_dir.repair_progress()
    run_dir.write_config(config, frames=int(learner.num_frames.numpy()))
    if cluster is not None:
        cluster.broadcast(learner.variables)  # Learner 0's, everywhere.
    return saver, config


def _remote_actor_counter(config, server, cluster, address, say):
    """A `distributed.ActorCounter` for a learner of remote actors, else
    None."""
    if config.spawn_actors:
        return None
    say("[impala] waiting for actors: --job_name=actor " + (
        f"--learner_hosts={','.join(config.learner_hosts)} --task=i, "
        f"i % {len(config.learner_hosts)} == {config.task}" if cluster
        else f"--learner_address={address}"))
    return distributed.ActorCounter(server.actor_unrolls,
                                    config.actor_timeout_s, log=say)


def _say_to(console):
    if console is None:
        return lambda msg: None
    return lambda msg: (console.write(msg + "\n"), console.flush())


def train(config, console=sys.stdout, make_hooks=None):
    """Runs training to `total_environment_frames`; returns the last record.

    make_hooks: optional callable(learner, checkpoints, say) -> the
    `LearnerLoop` hooks (population-based training: `pbt_member`).
    Holds the logdir (`RunDirectory.claim`) while it trains.
    """
    say = _say_to(console)
    numeric, why = precision_lib.resolve(config.actor.precision,
                                         gpu_visible=_gpu_visible())
    precision_lib.apply(numeric)  # Before the first tf.function runs.
    say(precision_lib.line(numeric, why))
    check_replay(config, say)
    run_dir = runs.RunDirectory(config.logdir)
    run_dir.claim()
    try:
        return _train_in(run_dir, config, say, console, make_hooks)
    finally:
        run_dir.release()


def _train_in(run_dir, config, say, console, make_hooks):
    """`train`'s work once it holds `run_dir`."""
    run_dir.check_compatible(config)
    config = _resolve_horizon(config, run_dir, say)
    address, cluster = _start_server(config, say)
    chief = cluster is None or cluster.is_chief
    _, learner, traj_spec, server = build(config,
                                          _server_maker(config, cluster))
    episodes = progress.EpisodeWindows(config.actor.level_set.levels)
    saver, config = _restore(config, run_dir, learner, cluster, say,
                             episodes)
    server.publish(learner.agent.trainable_variables, learner.num_steps)
    if address is None:
        say("[impala] learner: local actors through shared memory; no "
            "network port is open")
    else:
        say(f"[impala] learner serving on {address} (TensorFlow gRPC, no "
            "authentication, listening on every interface: keep this port "
            "on a private network)")
    counter = _remote_actor_counter(config, server, cluster, address, say)
    mode = mode_lib.Mode(config, learner, traj_spec, say)  # --architecture
    processes = mode.process_config
    actors = supervisor_lib.ActorSupervisor(
        processes.actor, address, processes.num_actors,
        spawn=config.spawn_actors, log=say,
        env_timeout_s=config.env_timeout_s,
        make_slots=mode.make_slots(shared_memory_slots(processes, traj_spec)),
        weights=server.weights if address is None else None)
    batches, mixer = mode.batches(
        actors.slots, lambda slots: _batch_source(
            processes, server, slots, traj_spec, cluster, say))
    logger = progress.ProgressLogger(
        config.logdir, config.actor.level_set.levels,
        config.learner.num_action_repeats,
        config.learner.total_environment_frames,
        interval_s=config.log_interval_s,
        console=console if chief else None,  # Learner 0 speaks for all.
        extra=lambda: dict(actors.stats(), **mode.stats(),
                           **(counter.stats() if counter else {})),
        suite_scores=config.actor.level_set.suite_scores,
        episodes=episodes)

    def close_inputs():
        actors.stop_restarting()
        server.close()
        batches.close()

    step = mode.step(learner_loop.make_step(
        learner, _jit_compile(config, cluster, say), cluster))
    loop = learner_loop.LearnerLoop(
        learner, step, batches, logger,
        saver if chief else None, config.learner.total_environment_frames,
        config.checkpoint_interval_s, on_stop=close_inputs, cluster=cluster,
        say=say, replay=mixer,
        hooks=make_hooks(learner, saver, say) if make_hooks else (),
        stop_at_return=config.stop_at_return)
    previous = {s: signal.signal(s, loop.on_signal)
                for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        failure = None
        try:
            _supervise(loop, actors, counter)
        except supervisor_lib.ActorsFailing as e:
            failure = e  # Saved and logged like a stop, then raised.
        record = loop.finish()
        if failure is not None:
            raise failure
        return record
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


def _supervise(loop, actors, counter):
    """Runs `loop` in its thread while this one watches the actors; stops
    everything at its end. Raises `supervisor.ActorsFailing` (after
    stopping everything)."""
    try:
        actors.start()
        loop.start()
        while loop.is_alive():
            loop.join(0.5)
            if not loop.stopping:
                actors.poll()
                if counter is not None:
                    counter.poll()
    finally:
        loop.stop()
        loop.join(60)
        if counter is not None:
            counter.wait_quiet()  # Let remote actors see the close.
        actors.stop()
