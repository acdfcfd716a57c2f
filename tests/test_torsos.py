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
