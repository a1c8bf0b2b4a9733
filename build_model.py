"""The Q-network of Mnih et al. 2013/2016, built two ways.

Both builders make the same network and take the same input:

    input   uint8 state (84, 84, m), the m most recent frames, newest last
    scale   to [0, 1] inside the model, so callers pass raw frames
    centre  each frame on its background, its most common value (ours: see below)
    conv    16 filters 8x8, stride 4, ReLU      -> (20, 20, 16)
    conv    32 filters 4x4, stride 2, ReLU      -> (9, 9, 32)
    dense   256 units, ReLU
    output  one linear Q-value per action

For 6 actions and 4 frames that is 677,686 trainable parameters. Both list
their trainable variables in the same order (kernel, then bias, per layer)
with the same shapes, so weights copy from one to the other one for one:

    >>> a, b = build_network(6), build_network_tf_layers(6)
    >>> for source, dest in zip(a.trainable_variables, b.trainable_variables):
    ...     dest.assign(source)

The networks that train count each frame's background with a layer of
this module (FrameBackgrounds); ``portable=True`` counts it with Keras ops
instead, the same values more slowly, so that a network saved as .keras
loads without this project: checkpoints and their .keras files use it.

A3C's network (build_actor_critic_network) has the same layers up to the
256 hidden units, then two outputs: policy logits, one per action, and the
value V(s).

Centring each frame on its background is ours. On a frame with a bright
background (Pong's is grey, 87 of 255), a first-layer filter's gradient is
nearly the same for all its 256 weights, since nearly every pixel under it
is the background; RMSProp steps each weight by about the learning rate, so
the filter's response to the background moves 256 times that each update,
with a sign that changes from update to update. A filter whose response
falls below zero everywhere stops firing and gets no gradient again. A3C at
its default rate lost 15 or 16 of Pong's 16 first-layer filters in each of
ten runs screened, most within 10,000 steps; with frames centred, none
(docs/plan.md, "Screens a3c-pong-early-collapse"). The background is the
frame's most common pixel value, not its mean: on Breakout (black, with
grey walls and coloured bricks) the mean put the background at -0.16,
where the most common value leaves Breakout's
frames as the paper's network saw them, and A3C's centred-on-the-mean
Breakout fell far behind its uncentred draws (docs/plan.md, section 2).
"""

import cv2
import keras
import numpy as np
import tensorflow as tf
from keras import ops

from atari_wrapper import FRAME_SIZE  # the network takes the frames the preprocessing makes

# Raised whenever the same weights would compute something else; checkpoints
# record it. 1: the paper's network, up to merge e9aa986; 2: frames centred on
# their means, up to 3 December 2026; 3: frames centred on their backgrounds.
NETWORK_VERSION = 3

# (filters, kernel size, stride) of the two convolutions, then the hidden width.
CONV_LAYERS = ((16, 8, 4), (32, 4, 2))
HIDDEN_UNITS = 256


# A frame's background is counted among every BACKGROUND_STRIDE-th pixel of
# each row and column: 441 pixels find it as surely as 7,056, in a third of the time.
BACKGROUND_STRIDE = 4

# The conv and hidden layers' kernels and biases, which both networks share.
TORSO_WEIGHTS = 2 * len(CONV_LAYERS) + 2


def build_network(num_actions, agent_history_length=4, portable=False):
    """The Q-network as a Keras functional model of standard layers.

    ``portable`` counts the frames' backgrounds with Keras ops, so that the
    model saved as .keras loads anywhere; otherwise with a layer of this
    module, several times faster (see FrameBackgrounds).
    """
    state, hidden = _torso(num_actions, agent_history_length, portable)
    q_values = keras.layers.Dense(num_actions, name="q_values")(hidden)
    return keras.Model(state, q_values, name="q_network")


def build_actor_critic_network(num_actions, agent_history_length=4, portable=False):
    """A3C's network: the Q-network's torso with two heads on its hidden layer.

    Outputs ``[policy_logits, value]``: the softmax of the logits is the
    policy pi(a | s), and ``value`` (one column) is V(s). Its weights are the
    torso's, then the policy head's, then the value head's. ``portable`` as
    for build_network.
    """
    state, hidden = _torso(num_actions, agent_history_length, portable)
    policy_logits = keras.layers.Dense(num_actions, name="policy_logits")(hidden)
    value = keras.layers.Dense(1, name="value")(hidden)
    return keras.Model(state, [policy_logits, value], name="actor_critic_network")


def _torso(num_actions, agent_history_length, portable):
    _check_sizes(num_actions, agent_history_length)
    state = keras.Input((FRAME_SIZE, FRAME_SIZE, agent_history_length), dtype="uint8", name="state")
    x = keras.layers.Rescaling(1.0 / 255.0, dtype="float32")(state)
    # Each frame centred on its background: see the module's docstring.
    backgrounds = _frame_backgrounds_keras(state) if portable else FrameBackgrounds()(state)
    x = keras.layers.Subtract()([x, backgrounds])
    for filters, kernel_size, stride in CONV_LAYERS:
        x = keras.layers.Conv2D(filters, kernel_size, strides=stride, activation="relu")(x)
    x = keras.layers.Flatten()(x)
    return state, keras.layers.Dense(HIDDEN_UNITS, activation="relu")(x)


def _frame_backgrounds_keras(state):
    """Each frame's most common pixel value over 255, (batch, 1, 1, m), in Keras ops that the .keras export keeps.

    Counted by comparing every sampled pixel with each of the 256 values:
    Keras' bincount has no fixed size (see FrameBackgrounds). Without XLA
    the comparison costs a third of A3C's gradient, so only the exported
    networks count this way.
    """
    pixels = ops.cast(state[:, ::BACKGROUND_STRIDE, ::BACKGROUND_STRIDE, :], "int32")
    values = np.arange(256, dtype=np.int32)  # a constant in the graph, not a captured tensor
    counts = ops.sum(ops.cast(ops.equal(ops.expand_dims(pixels, -1), values), "int32"), axis=(1, 2))  # (batch, m, 256)
    return ops.reshape(ops.cast(ops.argmax(counts, axis=-1), "float32") / 255.0, (-1, 1, 1, state.shape[-1]))


class FrameBackgrounds(keras.layers.Layer):
    """Each frame's most common pixel value over 255, (batch, 1, 1, m), by a TensorFlow bincount of fixed size.

    Each frame counts into its own 256 bins of one bincount. Its size is a
    constant of the graph: tf.math.bincount's follows the largest value
    counted, so XLA compiled it again for new states until the process ran
    out of memory maps. Five states' backgrounds take 0.7 ms without XLA,
    where the portable comparison takes 2.1.
    """

    def call(self, state):
        return _frame_backgrounds_tf(state)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], 1, 1, input_shape[-1])


def _frame_backgrounds_tf(state):
    sample = tf.cast(state[:, ::BACKGROUND_STRIDE, ::BACKGROUND_STRIDE, :], tf.int32)
    _, rows, columns, history = sample.shape
    frame_bins = np.arange(history, dtype=np.int32) * 256  # a constant in the graph, not a captured tensor
    pixels = tf.reshape(sample + frame_bins, (-1, rows * columns * history))  # one row per state
    counts = tf.raw_ops.DenseBincount(
        input=pixels, size=256 * history, weights=tf.zeros((0,), tf.int32), binary_output=False
    )
    backgrounds = tf.argmax(tf.reshape(counts, (-1, history, 256)), axis=-1, output_type=tf.int32)
    return tf.reshape(tf.cast(backgrounds, tf.float32) / 255.0, (-1, 1, 1, history))


class QNetworkOps(keras.layers.Layer):
    """The same network written as TensorFlow ops over variables of its own.

    This is the seed's "TensorFlow-type layers integrated with Keras": the
    forward pass is plain `tf.nn.conv2d` and `tf.matmul`, while Keras tracks
    the variables, so the model trains, checkpoints and copies like any other.
    """

    def __init__(self, num_actions, **kwargs):
        super().__init__(**kwargs)
        self.num_actions = num_actions

    def build(self, input_shape):
        channels = input_shape[-1]
        self.conv_weights = []
        for index, (filters, kernel_size, _) in enumerate(CONV_LAYERS):
            kernel = self.add_weight(
                shape=(kernel_size, kernel_size, channels, filters),
                initializer="glorot_uniform",
                name=f"conv{index + 1}_kernel",
            )
            bias = self.add_weight(shape=(filters,), initializer="zeros", name=f"conv{index + 1}_bias")
            self.conv_weights.append((kernel, bias))
            channels = filters
        side = FRAME_SIZE
        for _, kernel_size, stride in CONV_LAYERS:
            side = (side - kernel_size) // stride + 1  # "valid" padding
        flat_size = side * side * channels
        self.hidden_kernel = self.add_weight(
            shape=(flat_size, HIDDEN_UNITS), initializer="glorot_uniform", name="hidden_kernel"
        )
        self.hidden_bias = self.add_weight(shape=(HIDDEN_UNITS,), initializer="zeros", name="hidden_bias")
        self.output_kernel = self.add_weight(
            shape=(HIDDEN_UNITS, self.num_actions), initializer="glorot_uniform", name="output_kernel"
        )
        self.output_bias = self.add_weight(shape=(self.num_actions,), initializer="zeros", name="output_bias")

    def call(self, state):
        x = tf.cast(state, tf.float32) / 255.0
        x -= _frame_backgrounds_tf(state)
        for (kernel, bias), (_, _, stride) in zip(self.conv_weights, CONV_LAYERS):
            x = tf.nn.relu(tf.nn.conv2d(x, kernel, strides=stride, padding="VALID") + bias)
        x = tf.reshape(x, (-1, self.hidden_kernel.shape[0]))
        x = tf.nn.relu(tf.matmul(x, self.hidden_kernel) + self.hidden_bias)
        return tf.matmul(x, self.output_kernel) + self.output_bias

    def get_config(self):
        return {**super().get_config(), "num_actions": self.num_actions}


def build_network_tf_layers(num_actions, agent_history_length=4):
    """The Q-network with its layers written as TensorFlow ops (see QNetworkOps)."""
    _check_sizes(num_actions, agent_history_length)
    state = keras.Input((FRAME_SIZE, FRAME_SIZE, agent_history_length), dtype="uint8", name="state")
    q_values = QNetworkOps(num_actions, name="q_network_ops")(state)
    return keras.Model(state, q_values, name="q_network_tf_layers")


def q_values_numpy(weights, state):
    """Q-values of one state, computed by the same network in NumPy.

    For acting, one state at a time: a TensorFlow call costs about 0.2 ms
    before any arithmetic, more than NumPy takes for the whole pass.
    ``weights`` are the values of build_network's trainable variables, in
    order; ``state`` is one uint8 state (84, 84, m).
    """
    output_kernel, output_bias = weights[TORSO_WEIGHTS:]
    return (np.dot(_hidden_numpy(weights, state), output_kernel) + output_bias)[0]


def policy_and_value_numpy(weights, state):
    """pi(. | s) and V(s) of one state, by build_actor_critic_network's network in NumPy (see q_values_numpy)."""
    policy_kernel, policy_bias, value_kernel, value_bias = weights[TORSO_WEIGHTS:]
    hidden = _hidden_numpy(weights, state)
    logits = (np.dot(hidden, policy_kernel) + policy_bias)[0].astype(np.float64)  # sums to 1 as samplers check
    probabilities = np.exp(logits - logits.max())
    probabilities /= probabilities.sum()
    return probabilities, float((np.dot(hidden, value_kernel) + value_bias)[0, 0])


def _hidden_numpy(weights, state):
    """The torso's output, a (1, HIDDEN_UNITS) row."""
    return torso_activations_numpy(weights, state)[-1]


def torso_activations_numpy(weights, state):
    """Each torso layer's ReLU output on one state: (20, 20, 16), (9, 9, 32), then the (1, HIDDEN_UNITS) row.

    Written to hold Python's GIL as little as possible, since the other
    actor-learner threads wait for it: few NumPy calls, products through
    np.dot (which releases the GIL), the first layer's im2col copied as
    uint8 and scaled after the product, whose output is 16 times smaller;
    the frames' backgrounds come off there too: conv(x - b) = conv(x) - b . sum(kernel).
    """
    x = np.ascontiguousarray(state)  # the windows below are strides over its memory
    layers = []
    for index, (_, kernel_size, stride) in enumerate(CONV_LAYERS):
        kernel, bias = weights[2 * index], weights[2 * index + 1]
        patches = _receptive_fields(x, kernel_size, stride)
        side = (x.shape[0] - kernel_size) // stride + 1
        if index == 0:
            patches = patches.astype(np.float32)
        y = np.dot(patches, kernel.reshape(-1, kernel.shape[-1]))
        if index == 0:
            y *= np.float32(1.0 / 255.0)
            y -= np.dot(_frame_backgrounds(x) * np.float32(1.0 / 255.0), kernel.sum(axis=(0, 1)))
        y += bias
        x = np.maximum(y, 0.0, out=y).reshape(side, side, -1)
        layers.append(x)
    hidden_kernel, hidden_bias = weights[TORSO_WEIGHTS - 2 : TORSO_WEIGHTS]
    # A (1, n) matrix through np.dot: NumPy 2.4 keeps the GIL through a
    # one-row `@` or a vector product.
    hidden = np.dot(x.reshape(1, -1), hidden_kernel)
    hidden += hidden_bias
    layers.append(np.maximum(hidden, 0.0, out=hidden))
    return layers


def _frame_backgrounds(state):
    """Each frame's most common pixel value: cv2.calcHist counts a frame's 441 pixels in 7 us, np.bincount in 15."""
    sample = np.ascontiguousarray(state[::BACKGROUND_STRIDE, ::BACKGROUND_STRIDE])
    return np.array(
        [cv2.calcHist([sample], [frame], None, [256], (0, 256)).argmax() for frame in range(state.shape[-1])],
        np.float32,
    )


def _receptive_fields(x, kernel_size, stride):
    """im2col for a "valid" convolution: one row per output position, (ky, kx, channel) order."""
    height, width, channels = x.shape
    rows = (height - kernel_size) // stride + 1
    columns = (width - kernel_size) // stride + 1
    row_step, column_step, channel_step = x.strides
    windows = np.ndarray(
        (rows, columns, kernel_size, kernel_size, channels),
        x.dtype,
        x,
        strides=(stride * row_step, stride * column_step, row_step, column_step, channel_step),
    )
    return windows.reshape(rows * columns, -1)  # a copy: the windows overlap


def _check_sizes(num_actions, agent_history_length):
    if num_actions < 1:
        raise ValueError(f"num_actions must be at least 1, got {num_actions}")
    if agent_history_length < 1:
        raise ValueError(f"agent_history_length must be at least 1, got {agent_history_length}")
