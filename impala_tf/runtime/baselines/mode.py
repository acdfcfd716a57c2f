"""One trainer, four architectures (paper Table 1): what differs, and only that.

`--architecture` (`ActorConfig.architecture`) picks how acting and learning
meet; environments, agents, loss, optimizer, transport, progress output
and checkpoints are the trainer's own in every case:

  impala         actors act and send unrolls without waiting for the
                 learner (only for a free slot); the learner trains on
                 whichever B unrolls came first, V-trace correcting the lag.
  a2c_sync_traj  batched A2C, synchronous trajectories: every actor acts one
                 unroll with the current weights, then waits (`SyncWeights`)
                 until the learner, which trains on all actors' unrolls at
                 once (B = actors x environments), has published the next
                 weights: no policy lag (checked: `off_version_trajectories`
                 counts any trajectory acted by other weights than the
                 learner's, and stays 0).
  a2c_sync_step  batched A2C, synchronous step: one actor process makes
                 one batched policy call for all B environments at every
                 step; the environments live in `--num_actors` processes
                 (`envs.process_batch`), each step waiting for the slowest;
                 the update follows each unroll and acting resumes with its
                 weights (`SyncWeights`).
  a3c            each of `--num_actors` workers acts with its own copy of
                 the weights and sends the gradient of its own unroll; the
                 learner applies gradients one by one as they come and
                 publishes the weights the worker then refreshes from
                 (`a3c`).

The learner side is `Mode` (built by the trainer); the actor side is
`run_actor`, reached through `ActorLinks`, what the supervisor hands each
actor process in place of its bare `SharedSlots`. Every architecture's
waits are timed into the progress records (`waits`).
"""

import dataclasses
import functools
import multiprocessing
import time
import typing

import numpy as np
import tensorflow as tf

from impala_tf import transport
from impala_tf.envs import process_batch
from impala_tf.runtime.baselines import a3c
from impala_tf.runtime.baselines import waits
from impala_tf.transport import shared_memory
from impala_tf.transport import shared_weights
from impala_tf.transport.shared_block import POLL_MAX_S
from impala_tf.transport.shared_block import POLL_MIN_S

SYNCHRONOUS = ("a2c_sync_traj", "a2c_sync_step")


@dataclasses.dataclass
class ActorLinks:
    """What one local actor process gets besides the weights: its slots
    (trajectories, or A3C gradient messages), the run's `WaitStats`, and
    per architecture the A3C `applied` words (int64 RawArray [workers]) and
    learner config, or the environment processes of a2c_sync_step.
    Picklable only while spawning a process (shared memory)."""
    architecture: str
    slots: typing.Any
    stats: waits.WaitStats
    applied: typing.Any = None
    learner_config: typing.Any = None
    env_processes: int = 0


class SyncWeights(transport.ActorTransport):
    """An actor's transport that acts each unroll with new weights: after
    the first, `pull_weights` waits until the learner published a version
    newer than the last one pulled (its update on this unroll).

    Args:
      inner: the actor's transport (`shared_memory.SlotSender`).
      weights: the learner's `shared_weights.SharedWeights`.
    """

    def __init__(self, inner, weights):
        self._inner, self._weights = inner, weights
        self._last = None

    def pull_weights(self):
        wait = POLL_MIN_S
        while self._last is not None:
            if self._weights.closed:
                raise tf.errors.CancelledError(None, None,
                                               "the learner is done")
            version = self._weights.latest_version()
            if version is not None and version > self._last:
                break
            time.sleep(wait)
            wait = min(POLL_MAX_S, 2 * wait)
        weights, self._last = self._inner.pull_weights()
        return weights, self._last

    def enqueue(self, trajectories):
        self._inner.enqueue(trajectories)

    def close(self):
        self._inner.close()


def run_actor(config, task, agent, links, weights, should_stop,
              make_environments):
    """The actor side of `links.architecture` (module doc), in an actor
    process: `runtime.actor.run_actor` with this architecture's transport
    (timed, `waits.TimedTransport`) and, for a2c_sync_step, environments in
    `links.env_processes` processes (then the watchdog's `--env_timeout_s`
    does not apply: a process that dies still ends the actor). Returns the
    agent steps acted."""
    from impala_tf.runtime import actor as actor_lib  # pylint: disable=g-import-not-at-top
    arch = links.architecture
    row = waits.Row(links.stats.row(task))
    reader = shared_weights.WeightReader(weights)
    sender = shared_memory.SlotSender(links.slots, reader)
    if arch == "a3c":
        inner = a3c.GradientSender(
            agent, links.learner_config, actor_lib.trajectory_spec(
                config, agent), config.envs_per_actor, sender,
            np.frombuffer(links.applied, np.int64), task, row,
            lambda: weights.closed)
    elif arch in SYNCHRONOUS:
        inner = SyncWeights(sender, weights)
    else:
        inner = sender
    if arch == "a2c_sync_step":
        frame = config.observation_spec["frame"].shape.as_list()
        make_environments = process_batch.maker(
            links.env_processes, frame,
            record=lambda wall, straggler: (row.add("env_step_s", wall),
                                            row.add("env_straggler_s",
                                                    straggler)))
    return actor_lib.run_actor(config, task, agent,
                               waits.TimedTransport(inner, row),
                               should_stop=should_stop,
                               make_environments=make_environments)


class Mode:
    """The learner side of an architecture (module doc).

    Args:
      config: the run's `TrainConfig` (`config.check_architecture` passed).
      learner: the run's `Learner`, built (its weights published).
      traj_spec: one trajectory's spec.
      say: callable(str) for one start-up line.

    The trainer builds its `ActorSupervisor` from `process_config` (the
    run's config with the actor processes this architecture starts) and
    `make_slots(...)`, reads batches through
    `batches(...)`, steps with `step(...)` and adds `stats()` to each
    progress record.
    """

    def __init__(self, config, learner, traj_spec, say=print):
        self.architecture = arch = config.actor.architecture
        self._config, self._learner, self._spec = config, learner, traj_spec
        self._ctx = multiprocessing.get_context("spawn")
        # The actor processes as the supervisor sees them: for
        # a2c_sync_step one, with every environment.
        self.process_config = config
        if arch == "a2c_sync_step":
            self.process_config = dataclasses.replace(
                config, num_actors=1, actor=dataclasses.replace(
                    config.actor, envs_per_actor=config.num_actors
                    * config.actor.envs_per_actor))
        self.waits = waits.WaitStats(self.process_config.num_actors,
                                     self._ctx)
        self._applied = (self._ctx.RawArray("q", config.num_actors)
                         if arch == "a3c" else None)
        self.off_version = 0
        if arch != "impala":
            say(_START_LINES[arch].format(
                n=config.num_actors, e=config.actor.envs_per_actor,
                b=config.learner.batch_size))

    def make_slots(self, make_trajectory_slots):
        """The supervisor's `make_slots`: callable(ctx) -> `ActorLinks`
        around `make_trajectory_slots(ctx)` (the trainer's
        `shared_memory_slots`), A3C's message slots instead; None where the
        run has no shared memory (gRPC: impala only, untimed actors)."""
        if make_trajectory_slots is None:
            return None
        arch = self.architecture
        if arch == "a3c":
            n = self._config.actor.envs_per_actor
            spec = a3c.message_spec(self._learner, self._spec, n)
            self._message_spec = spec
            make_trajectory_slots = functools.partial(
                shared_memory.SharedSlots, spec, 1, 1)
        env_processes = (self._config.num_actors
                         if arch == "a2c_sync_step" else 0)

        def make(ctx):
            return ActorLinks(arch, make_trajectory_slots(ctx), self.waits,
                              self._applied, self._config.learner,
                              env_processes)
        return make

    @staticmethod
    def trajectory_slots(actor_slots):
        """The `SharedSlots` of the supervisor's `slots` (a list of
        `ActorLinks`, or of `SharedSlots`, or None)."""
        if not actor_slots:
            return actor_slots
        return [getattr(s, "slots", s) for s in actor_slots]

    def batches(self, actor_slots, trajectory_batches):
        """The learner's timed batch source and replay mixer: for A3C the
        workers' gradient messages one at a time, else
        `trajectory_batches(slots)` (the trainer's `_batch_source`, which
        returns (batches, mixer))."""
        slots = self.trajectory_slots(actor_slots)
        if self.architecture == "a3c":
            source = shared_memory.SlotReceiver(
                slots, self._message_spec).batches(1, 1)
            return waits.TimedBatches(source, self.waits), None
        source, mixer = trajectory_batches(slots)
        return waits.TimedBatches(source, self.waits), mixer

    def step(self, trajectory_step):
        """The learner's timed step: A3C's `a3c.apply_step`, else
        `trajectory_step` (`learner_loop.make_step`), checked in the
        synchronous architectures for trajectories of other weights."""
        if self.architecture == "a3c":
            step = a3c.apply_step(self._learner,
                                  np.frombuffer(self._applied, np.int64))
        elif self.architecture in SYNCHRONOUS:
            def step(batch):
                version = int(self._learner.num_steps.numpy())
                self.off_version += int(np.sum(
                    batch.policy_version.numpy() != version))
                return trajectory_step(batch)
        else:
            step = trajectory_step
        return waits.timed_step(step, self.waits)

    def stats(self):
        """The wait fields of a progress record (`waits`), and for the
        synchronous architectures off_version_trajectories."""
        out = self.waits.record()
        if self.architecture in SYNCHRONOUS:
            out["off_version_trajectories"] = self.off_version
        return out


_START_LINES = {
    "a2c_sync_traj": "[impala] architecture a2c_sync_traj: {n} actors x {e} "
                     "environments act one unroll each, then wait for the "
                     "update on all {b}",
    "a2c_sync_step": "[impala] architecture a2c_sync_step: one policy call "
                     "per step for {b} environments in {n} processes; the "
                     "update after each unroll",
    "a3c": "[impala] architecture a3c: {n} workers x {e} environments, each "
           "sending the gradient of its own unroll",
}
