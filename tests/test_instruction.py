"""Tests for impala_tf.agents.instruction: the instruction encoder on empty
and padded instructions, and its gradients."""

import numpy as np
import tensorflow as tf

from impala_tf import agents


def test_instruction_encoder_empty_and_padding():
    encoder = agents.InstructionEncoder()
    out = encoder(
        tf.constant(["", "go to the red apple", "", "  red  apple "]))
    assert out.shape == (4, 64) and out.dtype == tf.float32
    assert np.all(np.isfinite(out.numpy()))
    np.testing.assert_array_equal(out[0], np.zeros(64))
    np.testing.assert_array_equal(out[2], np.zeros(64))
    assert np.any(out[1].numpy() != 0)
    # Padding of shorter instructions does not change their encoding, and
    # extra whitespace is ignored.
    alone = encoder(tf.constant(["red apple"]))
    np.testing.assert_allclose(out[3], alone[0], atol=1e-6)
    # An all-empty batch (zero words) works and gives zeros.
    empty = encoder(tf.constant(["", ""]))
    np.testing.assert_array_equal(empty, np.zeros([2, 64]))
    # Gradients from an all-empty batch are finite (zero).
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(encoder(tf.constant(["", ""])))
    for g in tape.gradient(loss, encoder.trainable_variables):
        if g is not None:
            assert np.all(np.isfinite(tf.convert_to_tensor(g).numpy()))
