"""Tests of impala_tf.algorithm.losses with hand-computed values on tiny inputs."""

import numpy as np
import pytest
import tensorflow as tf

from impala_tf.algorithm import losses

LN3 = float(np.log(3.0))


def test_policy_gradient_loss_hand_computed():
    # pi(.|x_00) = [.5, .5], pi(.|x_01) = [.75, .25]; actions 0 and 1;
    # loss = -ln(.5) * 1 - ln(.25) * 3 = ln2 + 6 ln2 = 7 ln2.
    logits = tf.constant([[[0.0, 0.0], [LN3, 0.0]]])
    actions = tf.constant([[0, 1]])
    advantages = tf.constant([[1.0, 3.0]])
    loss = losses.policy_gradient_loss(logits, actions, advantages)
    np.testing.assert_allclose(loss.numpy(), 4.852030263919617, rtol=1e-6)


def test_policy_gradient_loss_epsilon():
    # pi(a=1|x) = e^-30 / (1 + e^-30) ~ 9.4e-14: -ln(pi) = 30 but
    # -ln(pi + 1e-6) = -ln(1.0000000936e-6) = 13.815510464...
    logits = tf.constant([[[0.0, -30.0]]])
    actions = tf.constant([[1]])
    advantages = tf.constant([[1.0]])
    plain = losses.policy_gradient_loss(logits, actions, advantages)
    eps = losses.policy_gradient_loss(logits, actions, advantages,
                                      log_epsilon=1e-6)
    np.testing.assert_allclose(plain.numpy(), 30.0, rtol=1e-6)
    np.testing.assert_allclose(eps.numpy(), 13.81551046, rtol=1e-6)


def test_baseline_loss_hand_computed():
    # 0.5 * (1 + 4 + 9 + 0) = 7.
    loss = losses.baseline_loss(tf.constant([[1.0, -2.0], [3.0, 0.0]]))
    np.testing.assert_allclose(loss.numpy(), 7.0)


def test_entropy_loss_hand_computed():
    # sum pi log pi: [.5, .5] -> -ln2 = -0.693147;
    # [.75, .25] -> .75 ln.75 + .25 ln.25 = -0.562335; total -1.2554823.
    logits = tf.constant([[[0.0, 0.0], [LN3, 0.0]]])
    np.testing.assert_allclose(losses.entropy_loss(logits).numpy(),
                               -1.2554823251787537, rtol=1e-6)


REWARDS = [-10.0, -1.0, 0.0, 0.5, 10.0]


@pytest.mark.parametrize("mode,expected", [
    ("abs_one", [-1.0, -1.0, 0.0, 0.5, 1.0]),
    # r < 0: 1.5 tanh(r/5); r >= 0: 5 tanh(r/5).
    # 1.5 tanh(-2) = -1.44604137, 1.5 tanh(-.2) = -0.29606298,
    # 5 tanh(.1) = 0.49833997, 5 tanh(2) = 4.82013790.
    ("soft_asymmetric", [-1.4460413701137254, -0.296062980337356, 0.0,
                         0.49833997312477907, 4.820137900379084]),
    ("none", REWARDS),
])
def test_clip_rewards(mode, expected):
    clipped = losses.clip_rewards(tf.constant(REWARDS), mode)
    np.testing.assert_allclose(clipped.numpy(), expected, rtol=1e-6)


def test_clip_rewards_unknown_mode():
    assert losses.REWARD_CLIPPING_MODES == ("abs_one", "soft_asymmetric",
                                            "none")
    with pytest.raises(ValueError, match="abs_one.*soft_asymmetric.*none"):
        losses.clip_rewards(tf.constant(REWARDS), "tanh")


def tiny_batch():
    """T = 2, B = 1, A = 2; both steps took action 0.

    pi = [.5, .5], [.75, .25]; mu = [.75, .25], [.5, .5];
    ratios pi/mu of the taken actions: 2/3, 3/2.
    V = [1, 2], bootstrap 3, r = [1, 0], gamma = [.5, .5].
    """
    return dict(
        target_logits=tf.constant([[[0.0, 0.0]], [[LN3, 0.0]]]),
        baseline=tf.constant([[1.0], [2.0]]),
        bootstrap_value=tf.constant([3.0]),
        actions=tf.constant([[0], [0]]),
        behaviour_logits=tf.constant([[[LN3, 0.0]], [[0.0, 0.0]]]),
        rewards=tf.constant([[1.0], [0.0]]),
        discounts=tf.constant([[0.5], [0.5]]))


ENTROPY = -1.2554823251787537  # of target_logits, see above
# Hand-worked (rho_bar = c_bar = pg_rho_bar = lambda = 1):
# vtrace: rho = c = [2/3, 1]; delta_1 = 0 + .5*3 - 2 = -.5, v_1 = 1.5;
#   delta_0 = 2/3 * (1 + .5*2 - 1) = 2/3, v_0 = 1 + 2/3 + .5*2/3*(-.5) = 1.5;
#   pg_adv = [2/3 * (1 + .5*1.5 - 1), 0 + .5*3 - 2] = [.5, -.5];
#   pg = .5 ln2 + .5 ln.75 = 0.2027325541; baseline .5*(.25+.25) = .25.
# none: n-step returns v = [1 + .5*0 + .25*3, 0 + .5*3] = [1.75, 1.5];
#   pg_adv = [1 + .5*1.5 - 1, -.5] = [.75, -.5];
#   pg = .75 ln2 + .5 ln.75 = 0.3760193492; baseline .5*(.5625+.25) = .40625.
# epsilon: pg = -.75 ln(.5 + 1e-6) + .5 ln(.75 + 1e-6) = 0.3760185159.
# 1step_is: pg_adv = [2/3 * .75, 3/2 * -.5] = [.5, -.75];
#   pg = .5 ln2 + .75 ln.75 = 0.1308120359.
EXPECTED = {
    # correction: (pg loss, unweighted baseline loss, vs, pg advantages)
    "vtrace": (0.2027325540540822, 0.25, [1.5, 1.5], [0.5, -0.5]),
    "none": (0.3760193491940685, 0.40625, [1.75, 1.5], [0.75, -0.5]),
    "epsilon": (0.37601851586179075, 0.40625, [1.75, 1.5], [0.75, -0.5]),
    "1step_is": (0.13081203594113697, 0.40625, [1.75, 1.5], [0.5, -0.75]),
}


@pytest.mark.parametrize("correction", losses.OFF_POLICY_CORRECTIONS)
def test_compute_loss_each_correction(correction):
    pg, baseline, vs, pg_adv = EXPECTED[correction]
    total, stats = losses.compute_loss(
        **tiny_batch(), baseline_cost=0.5, entropy_cost=0.01,
        off_policy_correction=correction)
    np.testing.assert_allclose(stats["policy_gradient_loss"].numpy(), pg,
                               rtol=1e-6)
    np.testing.assert_allclose(stats["baseline_loss"].numpy(),
                               0.5 * baseline, rtol=1e-6)
    np.testing.assert_allclose(stats["entropy_loss"].numpy(),
                               0.01 * ENTROPY, rtol=1e-6)
    expected_total = pg + 0.5 * baseline + 0.01 * ENTROPY
    np.testing.assert_allclose(total.numpy(), expected_total, rtol=1e-6)
    np.testing.assert_allclose(stats["total_loss"].numpy(), expected_total,
                               rtol=1e-6)
    np.testing.assert_allclose(stats["mean_vs"].numpy(), np.mean(vs),
                               rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(stats["mean_pg_advantages"].numpy(),
                               np.mean(pg_adv), rtol=1e-6, atol=1e-7)
    # (2/3 + 3/2) / 2 and (2/3 + 1) / 2.
    np.testing.assert_allclose(stats["mean_rho"].numpy(), 13 / 12, rtol=1e-6)
    np.testing.assert_allclose(stats["mean_clipped_rho"].numpy(), 5 / 6,
                               rtol=1e-6)


def test_compute_loss_unknown_correction():
    assert losses.OFF_POLICY_CORRECTIONS == ("vtrace", "1step_is", "epsilon",
                                             "none")
    with pytest.raises(ValueError, match="vtrace.*1step_is.*epsilon.*none"):
        losses.compute_loss(**tiny_batch(), baseline_cost=0.5,
                            entropy_cost=0.01, off_policy_correction="retrace")


def random_batch(T, B, A, seed):
    rng = np.random.RandomState(seed)
    f32 = lambda *s: rng.normal(size=s).astype(np.float32)  # noqa: E731
    return dict(
        target_logits=f32(T, B, A), baseline=f32(T, B),
        bootstrap_value=f32(B),
        actions=rng.randint(0, A, size=(T, B)).astype(np.int32),
        behaviour_logits=f32(T, B, A), rewards=f32(T, B),
        discounts=(0.9 * (rng.uniform(size=(T, B)) > 0.2)).astype(np.float32))


@pytest.mark.parametrize("correction", losses.OFF_POLICY_CORRECTIONS)
def test_losses_are_summed_not_averaged(correction):
    batch = random_batch(5, 3, 4, seed=1)
    doubled = {k: np.concatenate([v, v], axis=1 if v.ndim > 1 else 0)
               for k, v in batch.items()}
    kwargs = dict(baseline_cost=0.5, entropy_cost=0.01,
                  off_policy_correction=correction)
    total, stats = losses.compute_loss(**batch, **kwargs)
    total2, stats2 = losses.compute_loss(**doubled, **kwargs)
    np.testing.assert_allclose(total2.numpy(), 2 * total.numpy(), rtol=1e-5)
    for key in ("policy_gradient_loss", "baseline_loss", "entropy_loss"):
        np.testing.assert_allclose(stats2[key].numpy(),
                                   2 * stats[key].numpy(), rtol=1e-5)
    for key in ("mean_rho", "mean_vs"):  # means stay means
        np.testing.assert_allclose(stats2[key].numpy(), stats[key].numpy(),
                                   rtol=1e-5)


def test_individual_losses_are_summed():
    b = random_batch(4, 2, 3, seed=2)
    adv = b["rewards"]
    d = {k: np.concatenate([v, v], axis=1) for k, v in b.items()
         if v.ndim > 1}
    for fn, args, args2 in [
            (losses.policy_gradient_loss,
             (b["target_logits"], b["actions"], adv),
             (d["target_logits"], d["actions"], d["rewards"])),
            (losses.baseline_loss, (adv,), (d["rewards"],)),
            (losses.entropy_loss, (b["target_logits"],),
             (d["target_logits"],))]:
        np.testing.assert_allclose(fn(*args2).numpy(), 2 * fn(*args).numpy(),
                                   rtol=1e-5)


@pytest.mark.parametrize("correction", losses.OFF_POLICY_CORRECTIONS)
def test_gradients_reach_logits_and_baseline_only(correction):
    batch = {k: tf.constant(v) for k, v in random_batch(6, 2, 3, 3).items()}
    float_inputs = [k for k, v in batch.items() if v.dtype == tf.float32]
    with tf.GradientTape() as tape:
        tape.watch([batch[k] for k in float_inputs])
        total, _ = losses.compute_loss(
            **batch, baseline_cost=0.5, entropy_cost=0.01,
            off_policy_correction=correction)
    grads = dict(zip(float_inputs,
                     tape.gradient(total, [batch[k] for k in float_inputs])))
    for k in ("target_logits", "baseline"):
        assert grads[k] is not None and np.any(grads[k].numpy()), k
    for k in ("behaviour_logits", "bootstrap_value", "rewards", "discounts"):
        assert grads[k] is None or not np.any(grads[k].numpy()), k


@pytest.mark.parametrize("correction", losses.OFF_POLICY_CORRECTIONS)
def test_gradients_treat_targets_as_constants(correction):
    # With vs and pg_adv from EXPECTED held constant:
    #   d total / dV      = baseline_cost * (V - vs)
    #   d total / dlogits = (pi - onehot(a)) * pg_adv
    #                       + entropy_cost * pi * (log pi - sum pi log pi)
    # (epsilon: the pg term is scaled by pi_a / (pi_a + 1e-6), ~1 here).
    _, _, vs, pg_adv = EXPECTED[correction]
    batch = tiny_batch()
    with tf.GradientTape() as tape:
        tape.watch([batch["target_logits"], batch["baseline"]])
        total, _ = losses.compute_loss(
            **batch, baseline_cost=0.5, entropy_cost=0.01,
            off_policy_correction=correction)
    d_logits, d_baseline = tape.gradient(
        total, [batch["target_logits"], batch["baseline"]])
    np.testing.assert_allclose(
        d_baseline.numpy()[:, 0], 0.5 * (np.array([1.0, 2.0]) - vs),
        rtol=1e-6)
    pi = np.array([[0.5, 0.5], [0.75, 0.25]])
    onehot = np.array([[1.0, 0.0], [1.0, 0.0]])
    log_pi = np.log(pi)
    entropy_grad = pi * (log_pi - (pi * log_pi).sum(-1, keepdims=True))
    expected = (pi - onehot) * np.array(pg_adv)[:, None] + 0.01 * entropy_grad
    np.testing.assert_allclose(d_logits.numpy()[:, 0], expected, rtol=1e-5,
                               atol=1e-6)


@pytest.mark.parametrize("correction", losses.OFF_POLICY_CORRECTIONS)
def test_compute_loss_under_xla(correction):
    batch = random_batch(5, 2, 3, seed=4)
    kwargs = dict(baseline_cost=0.5, entropy_cost=0.01,
                  off_policy_correction=correction, clip_c_threshold=0.9,
                  lambda_=0.95)
    eager_total, eager_stats = losses.compute_loss(**batch, **kwargs)
    fn = tf.function(lambda b: losses.compute_loss(**b, **kwargs),
                     jit_compile=True)
    total, stats = fn(batch)
    np.testing.assert_allclose(total.numpy(), eager_total.numpy(), rtol=1e-5)
    for key, value in eager_stats.items():
        np.testing.assert_allclose(stats[key].numpy(), value.numpy(),
                                   rtol=1e-5, atol=1e-6, err_msg=key)
