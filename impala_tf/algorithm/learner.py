"""The learner: one gradient step on a batch of unrolls.

`Learner.train_step(batch)` takes a batch from the queue (the trajectory nest
of `types.Trajectory`, each [B, T+1, ...]) and:

  1. makes it time-major ([T+1, B, ...]);
  2. unrolls the agent over all T+1 steps from the actors' initial states
     (conv torso on T+1 x B frames at once, LSTM over time);
  3. computes V-trace targets and the summed IMPALA loss on steps 0..T-1,
     bootstrapping from the value at step T (`losses.compute_loss`);
  4. clips the gradients' global norm and applies RMSProp, whose learning
     rate decays linearly to 0 over `learning_rate_decay_frames`
     (default `total_environment_frames`); the entropy cost follows its
     optional schedule (`current_entropy_cost`);
  5. skips the update (and counts it) if the loss or the gradient norm is not
     finite, so NaNs never reach the weights;
  6. publishes the new weights for the actors (`transport`).

The base learning rate, entropy cost, RMSProp epsilon and gradient-norm
clip are variables (`hyperparameters.Hyperparameters`, initialised from the
config): `hyperparameters()` reads them, `set_hyperparameters(values)` sets
them for the next update (population-based training, `pbt`).

`Learner.step_function(jit_compile)` is the step the training loop runs:
steps 1-5 in one `tf.function`, XLA-compiled when asked, then the weight
publication in an outer, uncompiled `tf.function` (it writes resource
variables that the TensorFlow gRPC server serves to actors, which XLA cannot
own). Text observations (DMLab instructions) have no XLA kernels:
`resolve_jit_compile` decides, and says why.
"""

import sonnet as snt
import tensorflow as tf

from impala_tf import config as config_lib
from impala_tf.algorithm import hyperparameters as hyperparameters_lib
from impala_tf.algorithm import losses


LearnerConfig = config_lib.LearnerConfig  # Where it is written: config.py.


def resolve_jit_compile(requested, gpu_visible, text_observations=False):
    """Whether the learner step is XLA-compiled: the one place of its default.

    requested: True, False, or None for the default, which is on where a
    GPU is visible and off on CPU (where XLA measured 2.25x slower per step,
    benchmarks/README.md) and off for text observations (XLA has no string
    kernels). Raises ValueError if XLA is requested with text observations.
    """
    if requested and text_observations:
        raise ValueError("--jit_compile cannot compile a learner whose "
                         "observations hold text (XLA has no string ops); "
                         "use --nojit_compile")
    if requested is None:
        return bool(gpu_visible) and not text_observations
    return bool(requested)


def jit_compile_line(jit_compile, requested, why=None):
    """The log line saying whether the learner step is XLA-compiled.

    jit_compile: what is used; requested: the `resolve_jit_compile`
    argument (True, False or None); why: a reason that overrides the flag's.
    """
    how = why or ("--jit_compile" if requested else (
        "--nojit_compile" if requested is not None else "default: "
        + ("a GPU is visible" if jit_compile else "no GPU visible")))
    return ("[impala] learner step: "
            + ("XLA-compiled" if jit_compile else "not compiled")
            + f" ({how})")


def make_optimizer(learning_rate, decay, momentum, epsilon):
    """Sonnet RMSProp with TF1 semantics: lr * g / sqrt(ms + eps).

    Sonnet 2 keeps TF1's epsilon inside the square root but starts the mean
    square at 0, where TF1's `RMSPropOptimizer` (the release's) starts it at
    1; `initialize_mean_square` below sets the start (1 by default, as the
    release: `LearnerConfig.rmsprop_initial_mean_square`).
    `learning_rate` should be a `tf.Variable` so it can decay.
    """
    return snt.optimizers.RMSProp(
        learning_rate=learning_rate, decay=decay, momentum=momentum,
        epsilon=epsilon)


def initialize_mean_square(optimizer, variables, value=1.0):
    """Creates the optimizer's slots with the mean square at `value`.

    1.0 is TF1's start (the release's), 0.0 Sonnet 2's and PyTorch's.
    """
    optimizer._initialize(variables)  # pylint: disable=protected-access
    for ms in optimizer.ms:
        ms.assign(tf.fill(tf.shape(ms), tf.cast(value, ms.dtype)))


def time_major(batch):
    """[B, T+1, ...] -> [T+1, B, ...] for every time-indexed field."""
    swap = lambda x: tf.transpose(
        x, [1, 0] + list(range(2, x.shape.rank)))
    return batch._replace(
        env_outputs=tf.nest.map_structure(swap, batch.env_outputs),
        agent_outputs=tf.nest.map_structure(swap, batch.agent_outputs),
        game_over=swap(batch.game_over),
        episode_return=swap(batch.episode_return),
        episode_step=swap(batch.episode_step))


def fresh_trajectories(batch):
    """int64 scalar: the trajectories of `batch` (`types.Trajectory`,
    each [B, ...]) that actors played, not the replay buffer."""
    return tf.reduce_sum(tf.cast(~batch.replayed, tf.int64))


class Learner(tf.Module):
    """Owns the optimizer and the counters; the agent is passed in.

    Args:
      agent: an `agents.ImpalaAgent` (variables built or not).
      config: `LearnerConfig`.
      publish: optional callable(variables, version) run after each update
        inside the step (the transport's weight publication).

    Counters: `num_steps` (updates), `num_frames` (environment frames
    *played*: each update adds T x num_action_repeats for every fresh
    trajectory it trained on, summed over synchronous learners; replayed
    trajectories, `Trajectory.replayed`, add nothing) and
    `nonfinite_skips`. The frame counter drives the stop, the
    learning-rate and entropy schedules and every frames/s.
    """

    def __init__(self, agent, config, publish=None):
        super().__init__(name="learner")
        self.agent = agent
        self.config = config
        self._publish = publish
        self.num_steps = tf.Variable(0, dtype=tf.int64, trainable=False,
                                     name="num_steps")
        self.num_frames = tf.Variable(0, dtype=tf.int64, trainable=False,
                                      name="num_environment_frames")
        self.nonfinite_skips = tf.Variable(0, dtype=tf.int64,
                                           trainable=False,
                                           name="nonfinite_skips")
        self.hparams = hyperparameters_lib.Hyperparameters(config)
        # Where the learning rate reaches 0 (`resume.resolve_horizon` fixes
        # it for a run). A variable, so synchronous learners take learner
        # 0's (`distributed.LearnerCluster.broadcast`); not checkpointed:
        # run_config.json records it.
        self.learning_rate_horizon = tf.Variable(
            config.learning_rate_decay_frames
            or config.total_environment_frames, dtype=tf.int64,
            trainable=False, name="learning_rate_horizon")
        # The scheduled learning rate of the last update.
        self.learning_rate = tf.Variable(
            config.learning_rate, dtype=tf.float32, trainable=False,
            name="learning_rate")
        self.optimizer = make_optimizer(
            self.learning_rate, config.decay, config.momentum,
            self.hparams.epsilon)
        self._optimizer_ready = False

    def build(self, batch_spec):
        """Creates the agent's and optimizer's variables from a batch spec."""
        zeros = tf.nest.map_structure(
            lambda s: tf.zeros([2, 2] + s.shape.as_list()[2:], s.dtype)
            if s.shape.rank >= 2 else tf.zeros([2] + s.shape.as_list()[1:],
                                               s.dtype), batch_spec)
        zeros = zeros._replace(
            level_id=tf.zeros([2], tf.int32),
            policy_version=tf.zeros([2], tf.int64),
            agent_state=tf.nest.map_structure(
                lambda s: tf.zeros([2] + s.shape.as_list()[1:], s.dtype),
                batch_spec.agent_state))
        batch = time_major(zeros)
        self.agent.unroll(batch.agent_outputs.action, batch.env_outputs,
                          batch.agent_state)
        initialize_mean_square(
            self.optimizer, self.agent.trainable_variables,
            self.config.rmsprop_initial_mean_square)
        self._optimizer_ready = True

    def hyperparameters(self):
        """{name: float} of the evolvable hyperparameters
        (`hyperparameters.NAMES`: base learning_rate, entropy_cost, epsilon,
        max_grad_norm)."""
        return self.hparams.values()

    def set_hyperparameters(self, values):
        """Sets some of them ({name: float}) for the next update; no
        retrace. ValueError for an unknown name or a bad value."""
        self.hparams.assign(values)

    def current_learning_rate(self, frames):
        """lr * max(0, 1 - frames / decay_frames), a float32 scalar.

        lr is the base learning rate variable; decay_frames is the
        `learning_rate_horizon` variable (the config's
        `learning_rate_decay_frames`, or `total_environment_frames` when
        that is None).
        """
        fraction = (tf.cast(frames, tf.float64)
                    / tf.cast(self.learning_rate_horizon, tf.float64))
        remaining = tf.maximum(tf.constant(0.0, tf.float64), 1.0 - fraction)
        return tf.cast(self.hparams.learning_rate * remaining, tf.float32)

    def current_entropy_cost(self, frames):
        """The entropy cost for the next update, a float32 scalar.

        The entropy-cost variable (base) until
        `entropy_cost_decay_start_frames`, then linearly to
        `final_entropy_cost` itself at `entropy_cost_decay_end_frames`, and
        that value after: base + (final - base) * progress. Just base when
        `final_entropy_cost` is None (the paper's constant cost). The end
        value does not depend on base, so a resumed run or an evolved
        (`pbt`) base still ends at the configured value.
        """
        c = self.config
        base = self.hparams.entropy_cost
        if c.final_entropy_cost is not None:
            start = float(c.entropy_cost_decay_start_frames)
            span = float(c.entropy_cost_decay_end_frames) - start
            progress = tf.clip_by_value(
                (tf.cast(frames, tf.float64) - start) / span, 0.0, 1.0)
            base = base + (c.final_entropy_cost - base) * progress
        return tf.cast(base, tf.float32)

    def loss(self, batch):
        """Total loss (scalar, carries gradient) and stats for a batch."""
        c = self.config
        batch = time_major(batch)
        outputs, _ = self.agent.unroll(
            batch.agent_outputs.action, batch.env_outputs, batch.agent_state)
        bootstrap_value = outputs.baseline[-1]
        env = tf.nest.map_structure(lambda t: t[1:], batch.env_outputs)
        behaviour = tf.nest.map_structure(lambda t: t[1:],
                                          batch.agent_outputs)
        rewards = losses.clip_rewards(env.reward, c.reward_clipping)
        discounts = tf.cast(~env.done, tf.float32) * c.discounting
        # A policy fed a non-finite input (say a NaN reward) samples an
        # action out of range; keep such a batch computable and make its
        # loss NaN, so the update is skipped like any non-finite one.
        num_actions = behaviour.policy_logits.shape[-1]
        valid = tf.reduce_all((behaviour.action >= 0)
                              & (behaviour.action < num_actions))
        actions = tf.clip_by_value(behaviour.action, 0, num_actions - 1)
        entropy_cost = self.current_entropy_cost(self.num_frames)
        total_loss, stats = losses.compute_loss(
            outputs.policy_logits[:-1], outputs.baseline[:-1],
            bootstrap_value, actions, behaviour.policy_logits,
            rewards, discounts, baseline_cost=c.baseline_cost,
            entropy_cost=entropy_cost,
            off_policy_correction=c.off_policy_correction,
            clip_rho_threshold=c.clip_rho_threshold,
            clip_pg_rho_threshold=c.clip_pg_rho_threshold,
            clip_c_threshold=c.clip_c_threshold, lambda_=c.vtrace_lambda)
        total_loss += tf.where(valid, 0.0, float("nan"))
        return total_loss, dict(stats, total_loss=total_loss,
                                entropy_cost=entropy_cost)

    def train_step(self, batch):
        """One update. Returns a dict of scalar stats and episode data.

        batch: `types.Trajectory`, each [B, T+1, ...] (batch-major, as the
        queue delivers it). Returns stats (float32/int64 scalars) plus
        'game_over' bool [T, B], 'episode_return' float32 [T, B],
        'episode_step' int32 [T, B], 'level_id' int32 [B],
        'replayed' bool [B], 'policy_lag' float32 [B], and
        'rho_per_trajectory' and 'clipped_rho_per_trajectory' float32 [B]
        for statistics.
        """
        grads, total_loss, stats = self.compute_gradients(batch)
        return self.apply_gradients(grads, total_loss, stats, batch)

    def step_function(self, jit_compile):
        """The training loop's step: `step(batch) -> dict of tensors`.

        batch: `types.Trajectory`, each [B, T+1, ...] (eager tensors, e.g.
        from `prefetch.prefetch_to_device`). Returns what `train_step`
        returns. The update (loss, gradients, clipping, RMSProp, counters,
        the non-finite skip) runs in one `tf.function`, compiled by XLA if
        `jit_compile`; the weight publication (`publish`) runs after it,
        outside XLA. Call `build()` first.
        """
        if not self._optimizer_ready:
            raise RuntimeError("call Learner.build() before step_function()")
        update = tf.function(self._update, jit_compile=bool(jit_compile))

        @tf.function
        def step(batch):
            out = update(batch)
            with tf.control_dependencies([out["num_steps"]]):
                self._publish_weights()
            return out

        return step

    def _update(self, batch):
        """`train_step` without the weight publication."""
        grads, total_loss, stats = self.compute_gradients(batch)
        return self._apply(grads, total_loss, stats, batch)

    def _publish_weights(self):
        if self._publish is not None:
            self._publish(self.agent.trainable_variables, self.num_steps)

    def compute_gradients(self, batch):
        """Loss and gradients on one batch, nothing updated.

        batch: as for `train_step`. Returns (list of gradients, one per
        `agent.trainable_variables` entry and of its shape; total loss, a
        float32 scalar; dict of scalar stats).
        """
        if not self._optimizer_ready:
            raise RuntimeError("call Learner.build() before train_step()")
        variables = self.agent.trainable_variables
        with tf.GradientTape() as tape:
            total_loss, stats = self.loss(batch)
        grads = tape.gradient(total_loss, variables)
        return [tf.convert_to_tensor(g) for g in grads], total_loss, stats

    def apply_gradients(self, grads, total_loss, stats, batch, fresh=None):
        """Clips and applies gradients, counts the step, publishes weights.

        grads, total_loss: from `compute_gradients`, or their sums over the
        synchronous learners. stats: `compute_gradients`'s. batch: this
        learner's batch ([B, T+1, ...]), for the episode data returned.
        fresh: int64 scalar, the trajectories played (not replayed) that
        this update trained on, summed over synchronous learners; default
        `fresh_trajectories(batch)`. Returns what `train_step` returns.
        """
        out = self._apply(grads, total_loss, stats, batch, fresh)
        with tf.control_dependencies([out["num_steps"]]):
            self._publish_weights()
        return out

    def _apply(self, grads, total_loss, stats, batch, fresh=None):
        """`apply_gradients` without the weight publication."""
        c = self.config
        if fresh is None:
            fresh = fresh_trajectories(batch)
        variables = self.agent.trainable_variables
        lr = self.current_learning_rate(self.num_frames)
        self.learning_rate.assign(lr)
        # The clip is a variable (0: none), so both cases are computed.
        clip = tf.cast(self.hparams.max_grad_norm, tf.float32)
        clipped, grad_norm = tf.clip_by_global_norm(
            grads, tf.where(clip > 0, clip, 1.0))
        grads = [tf.where(clip > 0, g_clipped, g)
                 for g_clipped, g in zip(clipped, grads)]
        finite = tf.logical_and(tf.math.is_finite(total_loss),
                                tf.math.is_finite(grad_norm))

        def apply():
            self.optimizer.apply(grads, variables)
            return tf.constant(0, tf.int64)

        skipped = tf.cond(finite, apply, lambda: tf.constant(1, tf.int64))
        # Counters move only once the batch arrived and was used: tf.function
        # orders stateful ops per resource only, and a dequeue that fails
        # (the queue closed at shutdown) must not count a step.
        with tf.control_dependencies([skipped]):
            self.nonfinite_skips.assign_add(skipped)
            self.num_steps.assign_add(1)
            self.num_frames.assign_add(
                tf.cast(fresh, tf.int64) * c.frames_per_trajectory)
        out = dict(stats)
        out.update(
            learning_rate=lr, grad_norm=grad_norm,
            nonfinite_skips=self.nonfinite_skips.read_value(),
            num_steps=self.num_steps.read_value(),
            num_frames=self.num_frames.read_value(),
            game_over=tf.transpose(batch.game_over[:, 1:]),
            episode_return=tf.transpose(batch.episode_return[:, 1:]),
            episode_step=tf.transpose(batch.episode_step[:, 1:]),
            level_id=batch.level_id,
            replayed=batch.replayed,
            policy_lag=tf.cast(self.num_steps - 1 - batch.policy_version,
                               tf.float32))
        return out
