"""IMPALA losses, reward clipping and the off-policy corrections of Table 2.

Losses are **summed** over time and batch, not averaged (paper Table D.1 and
the official release), so their scale grows with T * B. Shapes are time-major:
logits float32 [T, B, A], actions int32 [T, B], everything else float32
[T, B] unless stated otherwise.
"""

import tensorflow as tf

from impala_tf.algorithm import vtrace

REWARD_CLIPPING_MODES = ("abs_one", "soft_asymmetric", "none")
OFF_POLICY_CORRECTIONS = ("vtrace", "1step_is", "epsilon", "none")

# Added inside log pi by the epsilon correction (paper Section 5.2.1).
EPSILON_CORRECTION = 1e-6


def policy_gradient_loss(logits, actions, advantages, log_epsilon=None):
    """Summed policy-gradient loss: sum_{t,b} -log pi(a|x) * advantage.

    Args:
      logits: float32 [T, B, A] target-policy logits; receives the gradient.
      actions: int32 [T, B] actions taken.
      advantages: float32 [T, B]; wrapped in tf.stop_gradient here.
      log_epsilon: None for log pi(a|x) (sparse softmax cross-entropy); a
        float eps to use log(pi(a|x) + eps) instead (the epsilon correction).

    Returns:
      float32 scalar.
    """
    advantages = tf.stop_gradient(advantages)
    if log_epsilon is None:
        neg_log_pi = tf.nn.sparse_softmax_cross_entropy_with_logits(
            labels=actions, logits=logits)
    else:
        logits = tf.convert_to_tensor(logits)
        probs = tf.reduce_sum(
            tf.nn.softmax(logits) * tf.one_hot(actions, tf.shape(logits)[-1],
                                               dtype=logits.dtype), axis=-1)
        neg_log_pi = -tf.math.log(probs + log_epsilon)
    return tf.reduce_sum(neg_log_pi * advantages)


def baseline_loss(advantages):
    """0.5 * sum_{t,b} advantages**2, with advantages = vs - V(x).

    The caller multiplies by baseline_cost (release convention; the paper's
    value update is 0.5 * baseline_cost * (v_s - V(x_s))**2). Gradient flows
    through ``advantages``, i.e. into V(x) when vs is a stop-gradient target.

    Args:
      advantages: float32 [T, B].

    Returns:
      float32 scalar.
    """
    return 0.5 * tf.reduce_sum(tf.square(advantages))


def entropy_loss(logits):
    """Negative entropy, summed: sum_{t,b,a} pi log pi.

    Minimising it raises the entropy; the caller multiplies by entropy_cost.

    Args:
      logits: float32 [T, B, A]; receives the gradient.

    Returns:
      float32 scalar (<= 0).
    """
    policy = tf.nn.softmax(logits)
    log_policy = tf.nn.log_softmax(logits)
    return tf.reduce_sum(policy * log_policy)


def clip_rewards(rewards, mode):
    """Clips rewards (float [...]) for the learner.

    Modes:
      abs_one: clip to [-1, 1] (single tasks, Atari).
      soft_asymmetric: "optimistic asymmetric" clipping of DMLab-30. The
        paper's figure writes 0.3 * min(tanh r, 0) + 5 * max(tanh r, 0); the
        release computes tf.where(r < 0, .3 * squeezed, squeezed) * 5 with
        squeezed = tanh(r / 5), i.e. 5 tanh(r / 5) for r >= 0 and
        1.5 tanh(r / 5) for r < 0. We follow the release.
      none: unchanged.

    Raises:
      ValueError: unknown mode.
    """
    if mode not in REWARD_CLIPPING_MODES:
        raise ValueError(f"Unknown reward clipping mode {mode!r}; valid modes "
                         f"are {REWARD_CLIPPING_MODES}.")
    rewards = tf.convert_to_tensor(rewards)
    if mode == "abs_one":
        return tf.clip_by_value(rewards, -1.0, 1.0)
    if mode == "soft_asymmetric":
        squeezed = tf.tanh(rewards / 5.0)
        return tf.where(rewards < 0, 0.3 * squeezed, squeezed) * 5.0
    return rewards


def compute_loss(target_logits, baseline, bootstrap_value, actions,
                 behaviour_logits, rewards, discounts, *, baseline_cost,
                 entropy_cost, off_policy_correction="vtrace",
                 clip_rho_threshold=1.0, clip_pg_rho_threshold=1.0,
                 clip_c_threshold=1.0, lambda_=1.0):
    """Total IMPALA loss for one batch of unrolls.

    total = pg + baseline_cost * baseline_loss + entropy_cost * entropy_loss.

    Off-policy corrections (paper Table 2):
      vtrace: V-trace targets and advantages (`vtrace.from_logits`).
      none: targets as if on-policy: V-trace with log_rhos = 0 and no clipping
        (with lambda_ = 1, plain bootstrapped n-step returns); pg uses log pi.
      epsilon: as `none`, but the pg loss uses log(pi + 1e-6).
      1step_is: targets as `none`; the pg advantage is multiplied by the
        unclipped importance weight pi(a_t|x_t) / mu(a_t|x_t) of that step.
    The clip thresholds only apply to `vtrace`; lambda_ applies to all.

    Args:
      target_logits: float32 [T, B, A], learner policy logits (gradient).
      baseline: float32 [T, B], V(x_t) from the learner (gradient).
      bootstrap_value: float32 [B], V(x_T); no gradient through the targets.
      actions: int32 [T, B], actions taken by the actors.
      behaviour_logits: float32 [T, B, A], actor policy logits (mu).
      rewards: float32 [T, B], already clipped.
      discounts: float32 [T, B], gamma * (1 - done).
      baseline_cost, entropy_cost: floats weighting the two auxiliary losses.
      off_policy_correction: one of OFF_POLICY_CORRECTIONS.
      clip_rho_threshold, clip_pg_rho_threshold, clip_c_threshold, lambda_:
        V-trace parameters (see `vtrace.from_importance_weights`).

    Returns:
      (total_loss, stats): total_loss is a float32 scalar whose gradient
      reaches target_logits and baseline only (targets are stop-gradient).
      stats maps names to float32 scalars (no gradient): policy_gradient_loss,
      baseline_loss (x baseline_cost), entropy_loss (x entropy_cost),
      total_loss, mean_rho (mean unclipped pi/mu), mean_clipped_rho (mean
      min(clip_rho_threshold, pi/mu)), mean_vs, mean_pg_advantages; and
      float32 [B] rho_per_trajectory and clipped_rho_per_trajectory (the
      same means per trajectory, over time).

    Raises:
      ValueError: unknown correction or inconsistent shapes.
    """
    if off_policy_correction not in OFF_POLICY_CORRECTIONS:
        raise ValueError(
            f"Unknown off_policy_correction {off_policy_correction!r}; valid "
            f"names are {OFF_POLICY_CORRECTIONS}.")
    target_logits = tf.convert_to_tensor(target_logits)
    behaviour_logits = tf.convert_to_tensor(behaviour_logits)
    vtrace_args = dict(discounts=discounts, rewards=rewards, values=baseline,
                       bootstrap_value=bootstrap_value, lambda_=lambda_)
    if off_policy_correction == "vtrace":
        returns = vtrace.from_logits(
            behaviour_policy_logits=behaviour_logits,
            target_policy_logits=target_logits, actions=actions,
            clip_rho_threshold=clip_rho_threshold,
            clip_pg_rho_threshold=clip_pg_rho_threshold,
            clip_c_threshold=clip_c_threshold, **vtrace_args)
        log_rhos = tf.stop_gradient(returns.log_rhos)
        vs, pg_advantages = returns.vs, returns.pg_advantages
    else:
        if target_logits.shape.rank is not None and (
                not target_logits.shape.is_compatible_with(
                    behaviour_logits.shape)):
            raise ValueError(
                f"target_logits has shape {target_logits.shape.as_list()} "
                f"but behaviour_logits has shape "
                f"{behaviour_logits.shape.as_list()}.")
        log_rhos = tf.stop_gradient(
            vtrace.log_probs_from_logits_and_actions(target_logits, actions)
            - vtrace.log_probs_from_logits_and_actions(behaviour_logits,
                                                       actions))
        returns = vtrace.from_importance_weights(
            log_rhos=tf.zeros_like(log_rhos), clip_rho_threshold=None,
            clip_pg_rho_threshold=None, clip_c_threshold=None, **vtrace_args)
        vs, pg_advantages = returns.vs, returns.pg_advantages
        if off_policy_correction == "1step_is":
            pg_advantages = tf.exp(log_rhos) * pg_advantages

    log_epsilon = (EPSILON_CORRECTION if off_policy_correction == "epsilon"
                   else None)
    pg_loss = policy_gradient_loss(target_logits, actions, pg_advantages,
                                   log_epsilon=log_epsilon)
    weighted_baseline_loss = baseline_cost * baseline_loss(vs - baseline)
    weighted_entropy_loss = entropy_cost * entropy_loss(target_logits)
    total_loss = pg_loss + weighted_baseline_loss + weighted_entropy_loss

    rhos = tf.exp(log_rhos)
    clipped_rhos = (rhos if clip_rho_threshold is None else
                    tf.minimum(tf.cast(clip_rho_threshold, rhos.dtype), rhos))
    stats = {
        "policy_gradient_loss": pg_loss,
        "baseline_loss": weighted_baseline_loss,
        "entropy_loss": weighted_entropy_loss,
        "total_loss": total_loss,
        "mean_rho": tf.reduce_mean(rhos),
        "mean_clipped_rho": tf.reduce_mean(clipped_rhos),
        "mean_vs": tf.reduce_mean(vs),
        "mean_pg_advantages": tf.reduce_mean(pg_advantages),
        # [B]: each trajectory's mean over time (fresh vs replayed stats).
        "rho_per_trajectory": tf.reduce_mean(rhos, axis=0),
        "clipped_rho_per_trajectory": tf.reduce_mean(clipped_rhos, axis=0),
    }
    stats = {k: tf.stop_gradient(v) for k, v in stats.items()}
    return total_loss, stats
