"""A3C: each worker sends the gradient of its own unroll to the learner.

A worker is an actor (`runtime.actor.Actor`, same acting code) whose
transport is a `GradientSender`:

  * `enqueue(unrolls)` computes the gradient of the worker's loss on its N
    unrolls with the weights that acted them (`Learner.compute_gradients`
    on the worker's own agent: the same loss as the learner's; the
    behaviour policy is the one being differentiated, so every importance
    weight is 1 and V-trace is the n-step return: advantage actor-critic),
    and copies it, with the unrolls' episode statistics, into the worker's
    shared-memory slot (`shared_memory.SlotSender`, the trajectories'
    transport carrying a `message_spec` nest instead);
  * `pull_weights()` waits until the learner has applied that gradient
    (its `applied` word for this worker reaches the number of gradients
    sent), then copies the newest weights: the worker's next unroll acts
    with weights that hold its own last update and every other worker's
    applied so far, as an A3C worker's shared parameters do.

The learner takes messages one at a time, oldest first, from any worker
(`shared_memory.SlotReceiver` with a batch of 1) and applies each with the
shared RMSProp (`apply_step`: `Learner.apply_gradients`: global-norm clip,
learning-rate schedule, frame counter, weight publication), then marks it
applied. A message's frames count once: N x T x action repeats.

Shapes: a message holds the gradients (one per trainable variable, its
shape; no gradient flows through them any more), the total loss and the
loss statistics (`losses.compute_loss`'s: scalars and [N]), and per unroll [N] level_id,
policy_version, replayed, and [N, T+1] game_over, episode_return,
episode_step.
"""

import collections
import time

import numpy as np
import tensorflow as tf

from impala_tf import transport
from impala_tf import types
from impala_tf.algorithm import learner as learner_lib
from impala_tf.transport.shared_block import POLL_MAX_S
from impala_tf.transport.shared_block import POLL_MIN_S

Message = collections.namedtuple(
    "Message", ["grads", "total_loss", "stats", "task", "sequence",
                "level_id", "policy_version", "replayed", "game_over",
                "episode_return", "episode_step"])

# What `Learner.apply_gradients` reads of a batch.
_Episodes = collections.namedtuple(
    "_Episodes", ["level_id", "policy_version", "replayed", "game_over",
                  "episode_return", "episode_step"])


def _worker_learner(agent, learner_config, traj_spec, n):
    """A `Learner` on the worker's agent, built for [n, T+1] batches, and
    its gradient function (a `tf.function` of one batch)."""
    learner = learner_lib.Learner(agent, learner_config)
    learner.build(types.batch_spec(traj_spec, n))
    return learner, tf.function(learner.compute_gradients)


def message_spec(learner, traj_spec, n):
    """Nest of `tf.TensorSpec` of one `Message` of a worker with n
    environments (`learner`: the run's, built; nothing is changed)."""
    agent = learner.agent
    batch = types.batch_spec(traj_spec, n)
    _, _, stats = tf.function(learner.compute_gradients).get_concrete_function(
        batch).structured_outputs
    return Message(
        grads=[tf.TensorSpec(v.shape, v.dtype)
               for v in agent.trainable_variables],
        total_loss=tf.TensorSpec([], tf.float32),
        stats={k: tf.TensorSpec(v.shape, v.dtype) for k, v in stats.items()},
        task=tf.TensorSpec([], tf.int64),
        sequence=tf.TensorSpec([], tf.int64),
        level_id=batch.level_id, policy_version=batch.policy_version,
        replayed=batch.replayed, game_over=batch.game_over,
        episode_return=batch.episode_return,
        episode_step=batch.episode_step)


class GradientSender(transport.ActorTransport):
    """An A3C worker's transport (module doc).

    Args:
      agent: the worker's agent (the actor assigns pulled weights to it).
      learner_config: the run's `LearnerConfig` (the loss).
      traj_spec: one trajectory's spec; n: the worker's environments.
      sender: a `shared_memory.SlotSender` on the worker's message slots
        (its `pull_weights` reads the learner's weights).
      applied: int64 view [num_workers] the learner writes: gradients of
        each worker applied so far.
      task: this worker's index.
      row: a `waits.Row` (the gradient's time goes to actor_gradient_s).
      closed: callable() -> True once the learner is done.
    """

    def __init__(self, agent, learner_config, traj_spec, n, sender, applied,
                 task, row, closed):
        self._learner, self._grads = _worker_learner(
            agent, learner_config, traj_spec, n)
        self._sender, self._applied = sender, applied
        self._task, self._row, self._closed = task, row, closed
        self._sent = 0

    def pull_weights(self):
        wait = POLL_MIN_S
        while self._applied[self._task] < self._sent:
            if self._closed():
                raise tf.errors.CancelledError(None, None,
                                               "the learner is done")
            time.sleep(wait)
            wait = min(POLL_MAX_S, 2 * wait)
        return self._sender.pull_weights()

    def enqueue(self, trajectories):
        start = time.perf_counter()
        batch = tf.nest.map_structure(tf.convert_to_tensor, trajectories)
        grads, total_loss, stats = self._grads(batch)
        self._row.add("actor_gradient_s", time.perf_counter() - start)
        self._sent += 1
        message = Message(
            grads=[g.numpy()[None] for g in grads],
            total_loss=total_loss.numpy()[None],
            stats={k: v.numpy()[None] for k, v in stats.items()},
            task=np.array([self._task], np.int64),
            sequence=np.array([self._sent], np.int64),
            level_id=trajectories.level_id[None],
            policy_version=trajectories.policy_version[None],
            replayed=trajectories.replayed[None],
            game_over=trajectories.game_over[None],
            episode_return=trajectories.episode_return[None],
            episode_step=trajectories.episode_step[None])
        self._sender.enqueue(message)

    def close(self):
        self._sender.close()


def apply_step(learner, applied):
    """The A3C learner's step: callable(message batch of 1) -> dict.

    Applies the message's gradients (`Learner.apply_gradients`: clip,
    RMSProp, counters, weight publication; its N unrolls count as fresh),
    then sets applied[task] to the message's sequence number (an int64
    view shared with the workers). Returns `Learner.train_step`'s dict.
    """
    @tf.function
    def apply(message):
        m = tf.nest.map_structure(lambda x: x[0], message)
        episodes = _Episodes(m.level_id, m.policy_version, m.replayed,
                             m.game_over, m.episode_return, m.episode_step)
        fresh = tf.reduce_sum(tf.cast(~m.replayed, tf.int64))
        return learner.apply_gradients(list(m.grads), m.total_loss,
                                       dict(m.stats), episodes, fresh=fresh)

    def step(message):
        out = apply(message)
        applied[int(message.task[0])] = int(message.sequence[0])
        return out

    return step
