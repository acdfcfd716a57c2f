"""Tests of impala_tf.algorithm.vtrace against an independent float64 numpy reference.

The reference evaluates eq. (1) of the paper as the literal double sum
  v_s = V(x_s) + sum_{t=s}^{T-1} (prod_{i=s}^{t-1} gamma_i c_i) delta_t V
(not the recursion the implementation uses).
"""

import numpy as np
import pytest
import tensorflow as tf

from impala_tf.algorithm import vtrace


def _clip(x, threshold):
    return x if threshold is None else np.minimum(threshold, x)


def reference_vtrace(log_rhos, discounts, rewards, values, bootstrap_value,
                     clip_rho_threshold=1.0, clip_pg_rho_threshold=1.0,
                     clip_c_threshold=1.0, lambda_=1.0):
    """Literal eq. (1) in float64; works elementwise on trailing dims."""
    log_rhos, discounts, rewards, values, bootstrap_value = (
        np.asarray(a, np.float64) for a in
        (log_rhos, discounts, rewards, values, bootstrap_value))
    T = log_rhos.shape[0]
    ratios = np.exp(log_rhos)
    rhos = _clip(ratios, clip_rho_threshold)
    cs = lambda_ * _clip(ratios, clip_c_threshold)
    values_ext = np.concatenate([values, bootstrap_value[None]], axis=0)
    deltas = np.stack([
        rhos[t] * (rewards[t] + discounts[t] * values_ext[t + 1] - values[t])
        for t in range(T)])
    vs = np.zeros_like(values)
    for s in range(T):
        total = values[s].copy()
        for t in range(s, T):
            coef = np.ones_like(values[s])
            for i in range(s, t):
                coef = coef * discounts[i] * cs[i]
            total = total + coef * deltas[t]
        vs[s] = total
    vs_ext = np.concatenate([vs, bootstrap_value[None]], axis=0)
    pg_rhos = _clip(ratios, clip_pg_rho_threshold)
    pg_advantages = np.stack([
        pg_rhos[s] * (rewards[s] + discounts[s] * vs_ext[s + 1] - values[s])
        for s in range(T)])
    return vs, pg_advantages


def reference_n_step_return(discounts, rewards, bootstrap_value):
    """On-policy target (eq. 2): sum of discounted rewards + bootstrap."""
    T = rewards.shape[0]
    targets = np.zeros_like(rewards, dtype=np.float64)
    for s in range(T):
        ret, discount = np.zeros_like(bootstrap_value, np.float64), 1.0
        for t in range(s, T):
            ret = ret + discount * rewards[t]
            discount = discount * discounts[t]
        targets[s] = ret + discount * bootstrap_value
    return targets


def make_inputs(T, B, extra=(), seed=0, dtype=np.float64):
    rng = np.random.RandomState(seed)
    shape = (T, B) + tuple(extra)
    discounts = np.full(shape, 0.9)
    discounts[rng.uniform(size=shape) < 0.2] = 0.0  # episode ends
    return dict(
        # exp(log_rhos) spans roughly [0.2, 5]: both sides of every clip.
        log_rhos=rng.uniform(-1.6, 1.6, size=shape).astype(dtype),
        discounts=discounts.astype(dtype),
        rewards=rng.normal(size=shape).astype(dtype),
        values=rng.normal(size=shape).astype(dtype),
        bootstrap_value=rng.normal(size=shape[1:]).astype(dtype))


CLIP_CONFIGS = [
    # (rho_bar, pg_rho_bar, c_bar, lambda_)
    (1.0, 1.0, 1.0, 1.0),          # paper / release default
    (None, None, None, 1.0),       # no clipping at all
    (3.7, 2.2, 1.4, 1.0),          # thresholds above 1
    (0.5, 0.8, 0.3, 1.0),          # thresholds below 1
    (2.0, 1.0, 0.5, 1.0),          # c_bar < rho_bar
    (1.0, 1.0, 1.0, 0.7),          # lambda < 1
    (None, 1.0, None, 0.5),        # lambda with unclipped traces
]


@pytest.mark.parametrize("T,B", [(1, 1), (2, 3), (7, 4), (16, 2)])
@pytest.mark.parametrize("config", CLIP_CONFIGS)
def test_matches_double_sum(T, B, config):
    rho, pg_rho, c, lam = config
    inputs = make_inputs(T, B, seed=T * 100 + B)
    out = vtrace.from_importance_weights(
        **inputs, clip_rho_threshold=rho, clip_pg_rho_threshold=pg_rho,
        clip_c_threshold=c, lambda_=lam)
    vs, pg = reference_vtrace(**inputs, clip_rho_threshold=rho,
                              clip_pg_rho_threshold=pg_rho,
                              clip_c_threshold=c, lambda_=lam)
    assert out.vs.dtype == tf.float64
    np.testing.assert_allclose(out.vs.numpy(), vs, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(out.pg_advantages.numpy(), pg, rtol=1e-10,
                               atol=1e-10)


def test_float32_matches_reference():
    inputs = make_inputs(20, 8, seed=3, dtype=np.float32)
    out = vtrace.from_importance_weights(**inputs)
    vs, pg = reference_vtrace(**inputs)
    assert out.vs.dtype == tf.float32 and out.vs.shape == (20, 8)
    np.testing.assert_allclose(out.vs.numpy(), vs, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(out.pg_advantages.numpy(), pg, rtol=1e-5,
                               atol=1e-5)


def test_episode_end_cuts_the_trace():
    # With gamma_2 = 0, v_0..v_2 must not depend on anything after step 2.
    inputs = make_inputs(6, 3, seed=5)
    inputs["discounts"][:] = 0.9
    inputs["discounts"][2] = 0.0
    out1 = vtrace.from_importance_weights(**inputs)
    inputs["rewards"][3:] += 10.0
    inputs["values"][3:] -= 4.0
    inputs["bootstrap_value"] += 7.0
    out2 = vtrace.from_importance_weights(**inputs)
    np.testing.assert_allclose(out1.vs.numpy()[:3], out2.vs.numpy()[:3])
    np.testing.assert_allclose(out1.pg_advantages.numpy()[:3],
                               out2.pg_advantages.numpy()[:3])


@pytest.mark.parametrize("T,B", [(1, 2), (5, 3), (12, 1)])
def test_on_policy_is_n_step_bellman_target(T, B):
    inputs = make_inputs(T, B, seed=T + B)
    inputs["log_rhos"] = np.zeros((T, B))
    out = vtrace.from_importance_weights(**inputs)
    targets = reference_n_step_return(inputs["discounts"], inputs["rewards"],
                                      inputs["bootstrap_value"])
    np.testing.assert_allclose(out.vs.numpy(), targets, rtol=1e-10,
                               atol=1e-10)
    next_targets = np.concatenate([targets[1:],
                                   inputs["bootstrap_value"][None]])
    expected_pg = (inputs["rewards"] + inputs["discounts"] * next_targets
                   - inputs["values"])
    np.testing.assert_allclose(out.pg_advantages.numpy(), expected_pg,
                               rtol=1e-10, atol=1e-10)


def _log_softmax(x):
    x = x - x.max(axis=-1, keepdims=True)
    return x - np.log(np.exp(x).sum(axis=-1, keepdims=True))


@pytest.mark.parametrize("extra", [(), (3,)])
def test_from_logits_matches_from_importance_weights(extra):
    T, B, A = 6, 4, 5
    rng = np.random.RandomState(11)
    inputs = make_inputs(T, B, extra, seed=11, dtype=np.float32)
    del inputs["log_rhos"]
    shape = (T, B) + extra
    behaviour = rng.normal(size=shape + (A,)).astype(np.float32)
    target = rng.normal(size=shape + (A,)).astype(np.float32)
    actions = rng.randint(0, A, size=shape).astype(np.int32)
    kwargs = dict(clip_rho_threshold=2.0, clip_pg_rho_threshold=1.5,
                  clip_c_threshold=0.9, lambda_=0.95)
    out = vtrace.from_logits(behaviour, target, actions, **inputs, **kwargs)

    def taken(logits):
        return np.take_along_axis(_log_softmax(logits.astype(np.float64)),
                                  actions[..., None], axis=-1)[..., 0]
    np.testing.assert_allclose(out.target_action_log_probs.numpy(),
                               taken(target), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(out.behaviour_action_log_probs.numpy(),
                               taken(behaviour), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(out.log_rhos.numpy(),
                               taken(target) - taken(behaviour),
                               rtol=1e-5, atol=1e-5)
    expected = vtrace.from_importance_weights(log_rhos=out.log_rhos,
                                              **inputs, **kwargs)
    np.testing.assert_array_equal(out.vs.numpy(), expected.vs.numpy())
    np.testing.assert_array_equal(out.pg_advantages.numpy(),
                                  expected.pg_advantages.numpy())
    vs, pg = reference_vtrace(taken(target) - taken(behaviour), **inputs,
                              **kwargs)
    np.testing.assert_allclose(out.vs.numpy(), vs, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(out.pg_advantages.numpy(), pg, rtol=1e-4,
                               atol=1e-4)


@pytest.mark.parametrize("extra", [(3,), (2, 2)])
def test_extra_trailing_dims(extra):
    inputs = make_inputs(5, 3, extra, seed=7)
    out = vtrace.from_importance_weights(**inputs, clip_c_threshold=0.8)
    vs, pg = reference_vtrace(**inputs, clip_c_threshold=0.8)
    assert out.vs.shape == (5, 3) + extra
    np.testing.assert_allclose(out.vs.numpy(), vs, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(out.pg_advantages.numpy(), pg, rtol=1e-10,
                               atol=1e-10)


@pytest.mark.parametrize("jit_compile", [False, True])
def test_tf_function_and_xla_match_eager(jit_compile):
    T, B, A = 8, 3, 4
    rng = np.random.RandomState(2)
    inputs = make_inputs(T, B, seed=2, dtype=np.float32)
    del inputs["log_rhos"]
    behaviour = rng.normal(size=(T, B, A)).astype(np.float32)
    target = rng.normal(size=(T, B, A)).astype(np.float32)
    actions = rng.randint(0, A, size=(T, B)).astype(np.int32)
    kwargs = dict(clip_rho_threshold=1.5, clip_c_threshold=0.9, lambda_=0.9)
    eager = vtrace.from_logits(behaviour, target, actions, **inputs, **kwargs)
    fn = tf.function(lambda *a: vtrace.from_logits(*a, **kwargs),
                     jit_compile=jit_compile)
    graph = fn(behaviour, target, actions, inputs["discounts"],
               inputs["rewards"], inputs["values"], inputs["bootstrap_value"])
    for field in eager._fields:
        np.testing.assert_allclose(getattr(graph, field).numpy(),
                                   getattr(eager, field).numpy(),
                                   rtol=1e-5, atol=1e-5, err_msg=field)
    # from_importance_weights on float64 under the same compilation mode.
    inputs64 = make_inputs(T, B, seed=4)
    fn64 = tf.function(
        lambda *a: vtrace.from_importance_weights(*a, clip_c_threshold=None),
        jit_compile=jit_compile)
    out = fn64(*inputs64.values())
    vs, pg = reference_vtrace(**inputs64, clip_c_threshold=None)
    np.testing.assert_allclose(out.vs.numpy(), vs, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(out.pg_advantages.numpy(), pg, rtol=1e-10,
                               atol=1e-10)


def test_tf_function_with_unknown_dims():
    spec = tf.TensorSpec([None, None], tf.float32)
    fn = tf.function(vtrace.from_importance_weights,
                     input_signature=[spec] * 4 +
                     [tf.TensorSpec([None], tf.float32)])
    inputs = make_inputs(6, 2, seed=8, dtype=np.float32)
    out = fn(*inputs.values())
    vs, pg = reference_vtrace(**inputs)
    np.testing.assert_allclose(out.vs.numpy(), vs, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(out.pg_advantages.numpy(), pg, rtol=1e-5,
                               atol=1e-5)


def test_no_gradient_through_targets():
    T, B, A = 5, 2, 3
    rng = np.random.RandomState(9)
    inputs = {k: tf.constant(v) for k, v in
              make_inputs(T, B, seed=9, dtype=np.float32).items()}
    behaviour = tf.constant(rng.normal(size=(T, B, A)).astype(np.float32))
    target = tf.constant(rng.normal(size=(T, B, A)).astype(np.float32))
    actions = tf.constant(rng.randint(0, A, size=(T, B)).astype(np.int32))
    watched = list(inputs.values()) + [behaviour, target]
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(watched)
        out = vtrace.from_importance_weights(**inputs)
        inputs_no_rhos = dict(inputs)
        del inputs_no_rhos["log_rhos"]
        out_logits = vtrace.from_logits(behaviour, target, actions,
                                        **inputs_no_rhos)
        targets = (tf.reduce_sum(out.vs) + tf.reduce_sum(out.pg_advantages) +
                   tf.reduce_sum(out_logits.vs) +
                   tf.reduce_sum(out_logits.pg_advantages))
        log_prob_sum = tf.reduce_sum(out_logits.target_action_log_probs)
    for grad in tape.gradient(targets, watched):
        assert grad is None or not np.any(grad.numpy())
    # The log-probabilities themselves stay differentiable.
    assert tape.gradient(log_prob_sum, target) is not None


def test_shape_errors_name_the_argument():
    inputs = make_inputs(5, 3, seed=0)
    bad = dict(inputs, values=np.zeros((5, 4)))
    with pytest.raises(ValueError, match=r"rewards has shape \[5, 3\] but "
                                         r"values has shape \[5, 4\]"):
        vtrace.from_importance_weights(**bad)
    with pytest.raises(ValueError, match="discounts"):
        vtrace.from_importance_weights(**dict(inputs,
                                              discounts=np.zeros((4, 3))))
    with pytest.raises(ValueError, match=r"bootstrap_value has shape \[5\]"):
        vtrace.from_importance_weights(**dict(inputs,
                                              bootstrap_value=np.zeros(5)))
    with pytest.raises(ValueError, match="bootstrap_value"):
        vtrace.from_importance_weights(
            **dict(inputs, bootstrap_value=np.zeros((3, 1))))
    with pytest.raises(ValueError, match="log_rhos"):
        vtrace.from_importance_weights(**dict(inputs, log_rhos=np.zeros(5)))
    with pytest.raises(ValueError, match="log_rhos"):
        vtrace.from_importance_weights(**dict(inputs,
                                              log_rhos=np.zeros((5, 3, 2))))

    del inputs["log_rhos"]
    inputs = {k: v.astype(np.float32) for k, v in inputs.items()}
    logits = np.zeros((5, 3, 4), np.float32)
    actions = np.zeros((5, 3), np.int32)
    with pytest.raises(ValueError, match="target_policy_logits"):
        vtrace.from_logits(logits, np.zeros((5, 3, 6), np.float32), actions,
                           **inputs)
    with pytest.raises(ValueError, match=r"behaviour_policy_logits has shape "
                                         r"\[5, 3\]"):
        vtrace.from_logits(np.zeros((5, 3), np.float32),
                           np.zeros((5, 3), np.float32), actions, **inputs)
    with pytest.raises(ValueError, match=r"actions has shape \[5, 2\]"):
        vtrace.from_logits(logits, logits, np.zeros((5, 2), np.int32),
                           **inputs)
    with pytest.raises(ValueError, match="values"):
        vtrace.from_logits(logits, logits, actions,
                           **dict(inputs, values=np.zeros((5, 2), np.float32)))
