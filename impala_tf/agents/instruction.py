"""Instruction encoder for DMLab language levels (as the official release).

A batch of instruction strings is split into words on whitespace, each word is
hashed into one of 1000 buckets, embedded in 20 dimensions and read by an LSTM
with 64 units; the encoding is the LSTM output at the last real word. An empty
instruction encodes to zeros.
"""

import sonnet as snt
import tensorflow as tf


def ensure_lstm_built(lstm, input_size, dtype=tf.float32):
    """Creates `lstm`'s variables outside any loop, if it has none yet.

    Sonnet modules create their variables on first call; a first call inside
    the body of a `tf.while_loop` traced in a `tf.function` cannot create
    variables. This runs one throw-away step on zeros [1, input_size] (its
    outputs are unused and pruned from a traced graph).
    """
    try:
        built = bool(lstm.variables)
    except ValueError:  # Sonnet refuses `.variables` on an unbuilt module.
        built = False
    if not built:
        lstm(tf.zeros([1, input_size], dtype), lstm.initial_state(1))


class InstructionEncoder(snt.Module):
    """Hash-bucket word embedding + LSTM over the words."""

    def __init__(self, num_buckets=1000, embed_dim=20, hidden_size=64,
                 name="instruction_encoder"):
        super().__init__(name=name)
        self._num_buckets = num_buckets
        self._embed_dim = embed_dim
        self._hidden_size = hidden_size
        self._embed = snt.Embed(num_buckets, embed_dim, name="embed")
        self._lstm = snt.LSTM(hidden_size, name="language_lstm")

    @property
    def output_size(self):
        return self._hidden_size

    def __call__(self, instruction):
        """Encodes instructions.

        Args:
          instruction: tf.string [N]; words separated by whitespace; may be
            empty.

        Returns:
          float32 [N, hidden_size]: the word-LSTM output at the last word of
          each instruction (zeros for an empty one). Differentiable with
          respect to the embedding and the LSTM variables; the string input
          carries no gradient.
        """
        instruction = tf.convert_to_tensor(instruction, tf.string)
        words = tf.strings.split(instruction)  # Ragged [N, (L)].
        ids = tf.strings.to_hash_bucket_fast(words, self._num_buckets)
        lengths = tf.cast(ids.row_lengths(), tf.int32)  # [N]
        ids = ids.to_tensor(default_value=0)  # [N, L]; padding masked below.
        # At least one (padding) step so that an all-empty batch still works.
        pad = tf.maximum(1 - tf.shape(ids)[1], 0)
        ids = tf.pad(ids, [[0, 0], [0, pad]])
        embedded = tf.transpose(self._embed(ids), [1, 0, 2])  # [L, N, E]

        ensure_lstm_built(self._lstm, self._embed_dim)
        num_words = tf.shape(embedded)[0]
        batch_size = tf.shape(embedded)[1]
        state = self._lstm.initial_state(batch_size)
        last = tf.zeros([batch_size, self._hidden_size], tf.float32)

        # The LSTM is causal, so outputs at real words do not depend on the
        # padding after them: keep the output of step t while t < length, which
        # leaves the output at word length-1 (and zeros for length 0).
        def body(t, state, last):
            output, state = self._lstm(embedded[t], state)
            last = tf.where((t < lengths)[:, None], output, last)
            return t + 1, state, last

        hidden = tf.TensorShape([None, self._hidden_size])
        _, _, last = tf.while_loop(
            lambda t, *_: t < num_words, body,
            (tf.constant(0), state, last),
            shape_invariants=(tf.TensorShape([]),
                              snt.LSTMState(hidden=hidden, cell=hidden),
                              hidden))
        return last
