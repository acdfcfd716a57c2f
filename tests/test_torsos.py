"""Tests for impala_tf.agents.torsos: the first layer's pixel convolution."""

import numpy as np
import pytest
import sonnet as snt
import tensorflow as tf

from impala_tf.agents import torsos


@pytest.mark.parametrize("kernel,stride,padding", [(8, 4, "VALID"),
                                                    (3, 1, "SAME")])
def test_pixel_conv_is_a_conv_on_the_scaled_frame(kernel, stride, padding):
    # The torsos' first layer folds the release's frame / 255 into the
    # kernel: same outputs and same gradients as snt.Conv2D on frame / 255
    # with the same variables.
    frame = tf.constant(np.random.default_rng(0).integers(
        0, 256, (3, 24, 20, 4), np.uint8))
    pixel = torsos.PixelConv2D(5, kernel, stride=stride, padding=padding,
                               b_init=snt.initializers.RandomNormal())
    plain = snt.Conv2D(5, kernel, stride=stride, padding=padding)
    with tf.GradientTape(persistent=True) as tape:
        got = pixel(frame)
        plain(tf.zeros([1, 24, 20, 4]))
        plain.w.assign(pixel.w)
        plain.b.assign(pixel.b)
        want = plain(tf.cast(frame, tf.float32) / 255.0)
        got_loss = tf.reduce_sum(tf.sin(got))
        want_loss = tf.reduce_sum(tf.sin(want))
    np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-5,
                               atol=1e-5)
    for g, w in zip(tape.gradient(got_loss, [pixel.w, pixel.b]),
                    tape.gradient(want_loss, [plain.w, plain.b])):
        np.testing.assert_allclose(g.numpy(), w.numpy(), rtol=1e-4,
                                   atol=1e-4)
    assert [v.name for v in pixel.variables] == [
        v.name.replace(plain.name, pixel.name) for v in plain.variables]


@pytest.mark.parametrize("shape,kernel,stride", [((3, 84, 84, 4), 8, 4),
                                                 ((2, 23, 21, 3), 4, 2)])
def test_blocked_filter_gradient_is_the_plain_gradient(shape, kernel,
                                                       stride):
    # Same forward pass and the same kernel gradient as the plain strided
    # convolution, also where H and W are not multiples of the stride.
    rng = np.random.default_rng(1)
    frame = tf.constant(rng.integers(0, 256, shape, np.uint8))
    w = tf.constant(rng.normal(size=(kernel, kernel, shape[3], 5)),
                    tf.float32)
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(w)
        got = torsos.blocked_filter_gradient(frame, w, stride)
        want = tf.nn.convolution(tf.cast(frame, tf.float32), w,
                                 strides=stride, padding="VALID")
        weights = tf.constant(rng.normal(size=want.shape), tf.float32)
        got_loss = tf.reduce_sum(got * weights)
        want_loss = tf.reduce_sum(want * weights)
    np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-6)
    got_grad = tape.gradient(got_loss, w).numpy()
    want_grad = tape.gradient(want_loss, w).numpy()
    np.testing.assert_allclose(got_grad, want_grad, rtol=1e-4,
                               atol=1e-4 * np.abs(want_grad).max())


def _gradient_ops(conv, frame):
    @tf.function
    def grad(frame):
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(tf.sin(conv(frame)))
        return tape.gradient(loss, conv.w)
    return grad, {op.type for op in
                  grad.get_concrete_function(frame).graph.get_operations()}


def test_pixel_conv_takes_the_blocked_gradient_under_bfloat16_only():
    frame = tf.constant(np.random.default_rng(2).integers(
        0, 256, (4, 84, 84, 4), np.uint8))
    conv = torsos.PixelConv2D(16, 8, stride=4, padding="VALID")
    grad, ops = _gradient_ops(conv, frame)
    assert "SpaceToDepth" not in ops  # float32: the plain gradient.
    want = grad(frame).numpy()
    previous = torsos.bfloat16_rewrite_on()
    tf.config.optimizer.set_experimental_options(
        {torsos.ONEDNN_BFLOAT16_REWRITE: True})
    try:
        assert torsos.bfloat16_rewrite_on()
        grad, ops = _gradient_ops(conv, frame)
        assert "SpaceToDepth" in ops
        got = grad(frame).numpy()
        # A 3x3 stride-1 SAME first layer (the deep torso's) keeps the
        # plain gradient.
        same = torsos.PixelConv2D(16, 3, stride=1, padding="SAME")
        assert "SpaceToDepth" not in _gradient_ops(same, frame)[1]
    finally:
        tf.config.optimizer.set_experimental_options(
            {torsos.ONEDNN_BFLOAT16_REWRITE: previous})
    # bfloat16 rounding (8 bits of mantissa) only.
    assert np.linalg.norm(got - want) < 0.02 * np.linalg.norm(want)
