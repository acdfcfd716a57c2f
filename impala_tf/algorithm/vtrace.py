"""V-trace off-policy actor-critic targets (Espeholt et al. 2018, Section 4).

All tensors are time-major, ``[T, B, ...]``: ``T`` is the unroll length and
``...`` are optional extra trailing dimensions shared by every argument. With
behaviour policy mu, target policy pi and ratio_t = pi(a_t|x_t) / mu(a_t|x_t):

  rho_t    = min(rho_bar, ratio_t)                    (clip_rho_threshold)
  c_t      = lambda_ * min(c_bar, ratio_t)            (clip_c_threshold)
  delta_t  = rho_t * (r_t + gamma_t V(x_{t+1}) - V(x_t))
  v_s      = V(x_s) + sum_{t=s}^{T-1} (prod_{i=s}^{t-1} gamma_i c_i) delta_t
  pg_adv_s = min(pg_rho_bar, ratio_s) * (r_s + gamma_s v_{s+1} - V(x_s))

with V(x_T) = v_T = bootstrap_value. v_s is computed with the backward
recursion v_s - V(x_s) = delta_s + gamma_s c_s (v_{s+1} - V(x_{s+1})).
A threshold of ``None`` disables that clip. Unlike the official release, c_bar
and lambda (paper Remark 2) are configurable; the defaults reproduce it.

Works eagerly, inside ``tf.function`` and under
``tf.function(jit_compile=True)``.
"""

import collections

import tensorflow as tf

VTraceReturns = collections.namedtuple(
    "VTraceReturns", ["vs", "pg_advantages"])

VTraceFromLogitsReturns = collections.namedtuple(
    "VTraceFromLogitsReturns",
    ["vs", "pg_advantages", "log_rhos", "behaviour_action_log_probs",
     "target_action_log_probs"])


def _shape_str(shape):
    return str(shape.as_list()) if shape.rank is not None else "<unknown>"


def _check_same_shape(ref_name, ref, name, tensor):
    if not ref.shape.is_compatible_with(tensor.shape):
        raise ValueError(
            f"{ref_name} has shape {_shape_str(ref.shape)} but {name} has "
            f"shape {_shape_str(tensor.shape)}; they must be equal "
            f"([T, B, ...]).")


def _check_logits_and_actions(name, logits, actions):
    """Static check: logits [T, B, ..., A] and actions [T, B, ...]."""
    if logits.shape.rank is None or actions.shape.rank is None:
        return
    if actions.shape.rank < 2:
        raise ValueError(
            f"actions must have rank >= 2 ([T, B, ...]) but has shape "
            f"{_shape_str(actions.shape)}.")
    if (logits.shape.rank != actions.shape.rank + 1 or
            not logits.shape[:-1].is_compatible_with(actions.shape)):
        raise ValueError(
            f"{name} has shape {_shape_str(logits.shape)} but actions has "
            f"shape {_shape_str(actions.shape)}; expected {name} of shape "
            f"actions.shape + [num_actions].")


def log_probs_from_logits_and_actions(policy_logits, actions):
    """log pi(a|x) of the taken actions.

    Args:
      policy_logits: float [T, B, ..., A] unnormalised log-probabilities.
      actions: int32/int64 [T, B, ...] action indices in [0, A).

    Returns:
      float [T, B, ...]; differentiable w.r.t. ``policy_logits``.
    """
    policy_logits = tf.convert_to_tensor(policy_logits)
    actions = tf.convert_to_tensor(actions)
    _check_logits_and_actions("policy_logits", policy_logits, actions)
    return -tf.nn.sparse_softmax_cross_entropy_with_logits(
        labels=actions, logits=policy_logits)


def from_logits(behaviour_policy_logits, target_policy_logits, actions,
                discounts, rewards, values, bootstrap_value,
                clip_rho_threshold=1.0, clip_pg_rho_threshold=1.0,
                clip_c_threshold=1.0, lambda_=1.0,
                name="vtrace_from_logits"):
    """V-trace for softmax policies given by logits.

    Args:
      behaviour_policy_logits: float32 [T, B, ..., A], logits of mu.
      target_policy_logits: float32 [T, B, ..., A], logits of pi.
      actions: int32 [T, B, ...], the actions mu took.
      discounts, rewards, values, bootstrap_value, clip_rho_threshold,
      clip_pg_rho_threshold, clip_c_threshold, lambda_: as in
        `from_importance_weights`.
      name: name scope.

    Returns:
      `VTraceFromLogitsReturns`: ``vs`` and ``pg_advantages`` (float
      [T, B, ...], stop-gradient), and ``log_rhos = target_action_log_probs -
      behaviour_action_log_probs`` (float [T, B, ...]). The three log-prob
      fields are NOT stop-gradient'ed: they are differentiable w.r.t. the
      logits.

    Raises:
      ValueError: statically known shapes are inconsistent.
    """
    behaviour_policy_logits = tf.convert_to_tensor(behaviour_policy_logits)
    target_policy_logits = tf.convert_to_tensor(target_policy_logits)
    actions = tf.convert_to_tensor(actions)
    _check_same_shape("behaviour_policy_logits", behaviour_policy_logits,
                      "target_policy_logits", target_policy_logits)
    for logits_name, logits in (
            ("behaviour_policy_logits", behaviour_policy_logits),
            ("target_policy_logits", target_policy_logits)):
        _check_logits_and_actions(logits_name, logits, actions)
    with tf.name_scope(name):
        target_action_log_probs = log_probs_from_logits_and_actions(
            target_policy_logits, actions)
        behaviour_action_log_probs = log_probs_from_logits_and_actions(
            behaviour_policy_logits, actions)
        log_rhos = target_action_log_probs - behaviour_action_log_probs
        returns = from_importance_weights(
            log_rhos=log_rhos, discounts=discounts, rewards=rewards,
            values=values, bootstrap_value=bootstrap_value,
            clip_rho_threshold=clip_rho_threshold,
            clip_pg_rho_threshold=clip_pg_rho_threshold,
            clip_c_threshold=clip_c_threshold, lambda_=lambda_)
        return VTraceFromLogitsReturns(
            vs=returns.vs, pg_advantages=returns.pg_advantages,
            log_rhos=log_rhos,
            behaviour_action_log_probs=behaviour_action_log_probs,
            target_action_log_probs=target_action_log_probs)


def _as_dtype(x, dtype):
    # tf.cast(0.8, tf.float64) would round 0.8 to float32 first.
    if tf.is_tensor(x) or isinstance(x, tf.Variable):
        return tf.cast(x, dtype)
    return tf.constant(x, dtype=dtype)


def _clipped(rhos, threshold):
    if threshold is None:
        return rhos
    return tf.minimum(_as_dtype(threshold, rhos.dtype), rhos)


def from_importance_weights(log_rhos, discounts, rewards, values,
                            bootstrap_value, clip_rho_threshold=1.0,
                            clip_pg_rho_threshold=1.0, clip_c_threshold=1.0,
                            lambda_=1.0,
                            name="vtrace_from_importance_weights"):
    """V-trace from log importance weights log(pi(a_t|x_t) / mu(a_t|x_t)).

    Args:
      log_rhos: float [T, B, ...], log importance weights of the actions.
      discounts: float [T, B, ...], gamma_t; 0 where the episode ends after
        step t (gamma * (1 - done)).
      rewards: float [T, B, ...], r_t (already clipped if wanted).
      values: float [T, B, ...], V(x_t) for t = 0..T-1.
      bootstrap_value: float [B, ...], V(x_T).
      clip_rho_threshold: rho_bar of delta_t, or None for no clipping.
      clip_pg_rho_threshold: clip of the weight in pg_advantages, or None.
      clip_c_threshold: c_bar of the traces c_t, or None for no clipping. The
        paper assumes rho_bar >= c_bar; this is not enforced.
      lambda_: trace discount in [0, 1]; c_t = lambda_ * min(c_bar, ratio_t).
      name: name scope.

    The float arguments are converted to the dtype of ``log_rhos`` (float32
    or float64).

    Returns:
      `VTraceReturns(vs, pg_advantages)`, both float [T, B, ...] and wrapped
      in tf.stop_gradient: they are targets and carry no gradient.

    Raises:
      ValueError: statically known ranks/shapes are inconsistent; the message
        names the offending argument and both shapes.
    """
    log_rhos = tf.convert_to_tensor(log_rhos)
    dtype = log_rhos.dtype
    discounts = tf.convert_to_tensor(discounts, dtype=dtype)
    rewards = tf.convert_to_tensor(rewards, dtype=dtype)
    values = tf.convert_to_tensor(values, dtype=dtype)
    bootstrap_value = tf.convert_to_tensor(bootstrap_value, dtype=dtype)

    if log_rhos.shape.rank is not None and log_rhos.shape.rank < 2:
        raise ValueError(
            f"log_rhos must have rank >= 2 ([T, B, ...]) but has shape "
            f"{_shape_str(log_rhos.shape)}.")
    _check_same_shape("rewards", rewards, "values", values)
    for arg_name, tensor in (("discounts", discounts), ("rewards", rewards),
                             ("values", values)):
        _check_same_shape("log_rhos", log_rhos, arg_name, tensor)
    if (values.shape.rank is not None and
            bootstrap_value.shape.rank is not None and
            not values.shape[1:].is_compatible_with(bootstrap_value.shape)):
        raise ValueError(
            f"bootstrap_value has shape {_shape_str(bootstrap_value.shape)} "
            f"but values has shape {_shape_str(values.shape)}; "
            f"bootstrap_value must be values' shape without the time axis.")

    with tf.name_scope(name):
        rhos = tf.exp(log_rhos)
        clipped_rhos = _clipped(rhos, clip_rho_threshold)
        cs = _as_dtype(lambda_, dtype) * _clipped(rhos, clip_c_threshold)
        clipped_pg_rhos = _clipped(rhos, clip_pg_rho_threshold)

        # V(x_{t+1}) for t = 0..T-1, with V(x_T) = bootstrap_value.
        values_t_plus_1 = tf.concat(
            [values[1:], bootstrap_value[None]], axis=0)
        deltas = clipped_rhos * (
            rewards + discounts * values_t_plus_1 - values)

        # acc_s = v_s - V(x_s) = delta_s + gamma_s c_s acc_{s+1}; acc_T = 0.
        def step(acc, elems):
            delta_t, discount_t, c_t = elems
            return delta_t + discount_t * c_t * acc

        vs_minus_values = tf.scan(
            step, (deltas, discounts, cs),
            initializer=tf.zeros_like(bootstrap_value), reverse=True,
            name="vs_minus_values")
        vs = values + vs_minus_values

        vs_t_plus_1 = tf.concat([vs[1:], bootstrap_value[None]], axis=0)
        pg_advantages = clipped_pg_rhos * (
            rewards + discounts * vs_t_plus_1 - values)

        return VTraceReturns(vs=tf.stop_gradient(vs),
                             pg_advantages=tf.stop_gradient(pg_advantages))
