"""Convolutional torsos of the IMPALA agents (Espeholt et al. 2018, Fig. 3).

Both torsos map a batch of frames, uint8 [N, H, W, C], to float32 [N, 256].
The network sees the frame scaled to [0, 1] (the release divides by 255).
Because the first layer is a convolution, conv(x / 255, w) = conv(x, w / 255):
the torsos cast the frame to float32 and scale the first layer's kernel
instead of the frame (`PixelConv2D`), the same function and the same
variables at a fraction of the cost (4K kernel entries instead of 19M pixels
per learner batch). Under TensorFlow's oneDNN bfloat16 rewrite
(`--precision=bfloat16`) a strided first layer also computes its kernel's
gradient on the frame rearranged into stride x stride blocks
(`blocked_filter_gradient`), the same gradient in a shape the CPU's matrix
units take faster. H, W and C must be
known statically (the final linear layer is sized from them); N may be
dynamic. Every output carries gradient to the torso's variables (the frame
itself is integer data and carries none).
"""

import sonnet as snt
import tensorflow as tf

TORSO_NAMES = ("shallow", "deep")
# The TensorFlow graph option of the oneDNN bfloat16 rewrite
# (runtime/precision.py sets it for the whole process).
ONEDNN_BFLOAT16_REWRITE = "auto_mixed_precision_onednn_bfloat16"


def bfloat16_rewrite_on():
    """Whether this process's `tf.function`s run under the oneDNN bfloat16
    rewrite (decided when a function is traced)."""
    options = tf.config.optimizer.get_experimental_options()
    return bool(options.get(ONEDNN_BFLOAT16_REWRITE, False))


def blocked_filter_gradient(frame, kernel, stride):
    """conv(frame, kernel), VALID, whose kernel gradient is computed blocked.

    The forward pass is the plain strided convolution. The gradient with
    respect to `kernel` is the same sum rearranged: the frame cut into
    stride x stride blocks (`tf.nn.space_to_depth`: [N, H/s, W/s, s*s*C])
    convolved at stride 1 by a (k/s) x (k/s) kernel over s*s*C channels.
    Exact in exact arithmetic. On an AMX CPU under the bfloat16 rewrite it
    cut the shallow torso's first layer (672 frames, forward and backward)
    from 69-71 to 60-62 ms of CPU; in float32 it is slower
    (benchmarks/README.md, "On an AMX machine").

    Args:
      frame: uint8 (or any real dtype) [N, H, W, C], H, W and C static; no
        gradient.
      kernel: float32 [k, k, C, O], k a multiple of `stride`; carries
        gradient.
      stride: int > 1, the same along H and W.

    Returns:
      float32 [N, (H - k) // s + 1, (W - k) // s + 1, O], differentiable
      with respect to `kernel`.
    """
    k, _, channels, outputs = kernel.shape
    blocks = k // stride
    height, width = frame.shape[1], frame.shape[2]
    # The rows and columns past the last whole block are outside every
    # VALID window: dropping them changes neither result.
    cropped = frame[:, :height // stride * stride, :width // stride * stride]

    @tf.custom_gradient
    def conv(kernel):
        result = tf.nn.convolution(tf.cast(frame, tf.float32), kernel,
                                   strides=stride, padding="VALID")

        def grad(upstream):
            blocked = tf.cast(tf.nn.space_to_depth(cropped, stride),
                              tf.float32)
            blocked_grad = tf.compat.v1.nn.conv2d_backprop_filter(
                blocked, [blocks, blocks, stride * stride * channels,
                          outputs],
                upstream, strides=[1, 1, 1, 1], padding="VALID")
            # [kh/s, kw/s, (s_h, s_w, C), O] back to [kh, kw, C, O].
            blocked_grad = tf.reshape(
                blocked_grad,
                [blocks, blocks, stride, stride, channels, outputs])
            return tf.reshape(
                tf.transpose(blocked_grad, [0, 2, 1, 3, 4, 5]),
                [k, k, channels, outputs])

        return result, grad

    return conv(kernel)


def _pair(value):
    """Sonnet's int-or-sequence size as an (H, W) tuple."""
    if isinstance(value, int):
        return (value, value)
    return tuple(value)


class PixelConv2D(snt.Conv2D):
    """`snt.Conv2D` applied to frame / 255, computed as conv(frame, w / 255).

    Takes the frame itself, uint8 [N, H, W, C]; returns float32
    [N, H', W', output_channels], differentiable with respect to `w` and `b`
    (the same variables, names and initialisation as `snt.Conv2D`, so
    checkpoints are interchangeable with a plain convolution on the scaled
    frame). Under the bfloat16 rewrite a square, strided, VALID, NHWC layer
    whose kernel is a multiple of its stride takes its kernel gradient
    through `blocked_filter_gradient`.
    """

    def __call__(self, frame):
        pixels = tf.cast(frame, tf.float32)
        self._initialize(pixels)  # Sonnet's create-once variables.
        kernel = self.w * (1.0 / 255.0)
        if self._blocked_gradient():
            outputs = blocked_filter_gradient(frame, kernel,
                                              _pair(self.stride)[0])
        else:
            outputs = tf.nn.convolution(
                pixels, kernel, strides=self.stride,
                padding=self.conv_padding, dilations=self.rate,
                data_format=self.data_format)
        return tf.nn.bias_add(outputs, self.b, data_format=self.data_format)

    def _blocked_gradient(self):
        stride = _pair(self.stride)
        kernel = tuple(self.w.shape[:2])
        return (bfloat16_rewrite_on() and self.data_format == "NHWC"
                and self.conv_padding == "VALID"
                and set(_pair(self.rate)) == {1} and stride[0] > 1
                and len(set(stride)) == 1 and len(set(kernel)) == 1
                and kernel[0] % stride[0] == 0)


class ShallowTorso(snt.Module):
    """The paper's shallow torso (about 1.2M parameters with the agent).

    conv 16 8x8 stride 4 VALID, ReLU; conv 32 4x4 stride 2 VALID, ReLU;
    flatten; linear 256, ReLU. Needs frames of at least 20x20.
    """

    def __init__(self, output_size=256, name="shallow_torso"):
        super().__init__(name=name)
        self._conv1 = PixelConv2D(16, 8, stride=4, padding="VALID",
                                  name="conv_1")
        self._conv2 = snt.Conv2D(32, 4, stride=2, padding="VALID",
                                 name="conv_2")
        self._flatten = snt.Flatten()
        self._linear = snt.Linear(output_size, name="linear")

    def __call__(self, frame):
        """Encodes frames.

        Args:
          frame: uint8 [N, H, W, C] (H, W, C static, H and W >= 20).

        Returns:
          float32 [N, output_size] (>= 0, post-ReLU), differentiable with
          respect to the torso's variables.
        """
        x = tf.nn.relu(self._conv1(frame))
        x = tf.nn.relu(self._conv2(x))
        return tf.nn.relu(self._linear(self._flatten(x)))


class ResidualBlock(snt.Module):
    """x + conv(relu(conv(relu(x)))), both convs 3x3 stride 1 SAME."""

    def __init__(self, num_channels, name=None):
        super().__init__(name=name)
        self._conv1 = snt.Conv2D(num_channels, 3, stride=1, padding="SAME",
                                 name="conv_1")
        self._conv2 = snt.Conv2D(num_channels, 3, stride=1, padding="SAME",
                                 name="conv_2")

    def __call__(self, x):
        """float32 [N, H, W, num_channels] -> same shape."""
        y = self._conv1(tf.nn.relu(x))
        y = self._conv2(tf.nn.relu(y))
        return x + y


class DeepTorso(snt.Module):
    """The paper's 15-conv residual torso (1,628,010 parameters with the agent
    for 72x96x3 frames and 9 actions, as the release).

    Three sections with (16, 32, 32) channels, each: conv 3x3 stride 1 SAME,
    max-pool 3x3 stride 2 SAME, two residual blocks. Then ReLU, flatten,
    linear 256, ReLU.
    """

    def __init__(self, channels=(16, 32, 32), num_blocks=2, output_size=256,
                 name="deep_torso"):
        super().__init__(name=name)
        self._sections = []
        for i, num_ch in enumerate(channels):
            conv_class = PixelConv2D if i == 0 else snt.Conv2D
            conv = conv_class(num_ch, 3, stride=1, padding="SAME",
                              name="section_%d_conv" % i)
            blocks = [ResidualBlock(num_ch, name="residual_%d_%d" % (i, j))
                      for j in range(num_blocks)]
            self._sections.append((conv, blocks))
        self._flatten = snt.Flatten()
        self._linear = snt.Linear(output_size, name="linear")

    def __call__(self, frame):
        """Encodes frames.

        Args:
          frame: uint8 [N, H, W, C] (H, W, C static).

        Returns:
          float32 [N, output_size] (>= 0, post-ReLU), differentiable with
          respect to the torso's variables.
        """
        x = frame
        for conv, blocks in self._sections:
            x = conv(x)
            x = tf.nn.max_pool2d(x, ksize=3, strides=2, padding="SAME")
            for block in blocks:
                x = block(x)
        x = tf.nn.relu(x)
        return tf.nn.relu(self._linear(self._flatten(x)))


def make_torso(name, output_size=256):
    """Returns the torso module called `name` ('shallow' or 'deep')."""
    if name == "shallow":
        return ShallowTorso(output_size=output_size)
    if name == "deep":
        return DeepTorso(output_size=output_size)
    raise ValueError("Unknown torso %r; expected one of %s"
                     % (name, TORSO_NAMES))
