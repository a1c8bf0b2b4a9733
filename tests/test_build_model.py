"""The Q-network's two builders: same architecture, same variables, same Q-values."""

import os

import numpy as np
import pytest
import tensorflow as tf
from numpy.lib.stride_tricks import sliding_window_view

import build_model
from build_model import FRAME_SIZE, build_network, build_network_tf_layers



def build_portable_network(num_actions, agent_history_length=4):
    """build_network as the .keras export saves it: its backgrounds counted in Keras ops."""
    return build_network(num_actions, agent_history_length, portable=True)


BUILDERS = [build_network, build_portable_network, build_network_tf_layers]
NUM_ACTIONS = 6
PAPER_PARAMETERS = 677_686  # 6 actions, 4 frames (build_model's docstring)


def states(batch, history=4, seed=0):
    """A batch of random uint8 states (batch, 84, 84, m)."""
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (batch, FRAME_SIZE, FRAME_SIZE, history), dtype=np.uint8)


def q_values(model, batch):
    return np.asarray(model(batch, training=False))


def shapes(model):
    return [tuple(variable.shape) for variable in model.trainable_variables]


def randomize(model, seed):
    """Give every variable (biases too, which start at zero) random values."""
    rng = np.random.default_rng(seed)
    for variable in model.trainable_variables:
        variable.assign(rng.normal(0.0, 0.05, tuple(variable.shape)).astype(np.float32))


def copy_weights(source, dest):
    for from_variable, to_variable in zip(source.trainable_variables, dest.trainable_variables, strict=True):
        to_variable.assign(from_variable)


@pytest.fixture(scope="module", params=BUILDERS, ids=lambda builder: builder.__name__)
def model(request):
    """Each builder's network for 6 actions and 4 frames, built once per module."""
    return request.param(NUM_ACTIONS)


@pytest.fixture(scope="module")
def copied_pair():
    """A Keras-layers network with random weights, and an ops network holding a copy of them."""
    keras_model, ops_model = build_network(NUM_ACTIONS), build_network_tf_layers(NUM_ACTIONS)
    randomize(keras_model, seed=1)
    copy_weights(keras_model, ops_model)
    return keras_model, ops_model


def test_paper_parameter_count(model):
    """Both builders have 677,686 trainable parameters for 6 actions and 4 frames."""
    assert sum(int(np.prod(shape)) for shape in shapes(model)) == PAPER_PARAMETERS
    assert not model.non_trainable_variables


@pytest.mark.parametrize("batch", [1, 3])
def test_output_is_one_q_value_per_action(model, batch):
    """A uint8 batch (b, 84, 84, 4) gives float32 Q-values (b, num_actions)."""
    q = q_values(model, states(batch))
    assert q.shape == (batch, NUM_ACTIONS)
    assert q.dtype == np.float32
    assert np.all(np.isfinite(q))


def test_builders_list_variables_in_the_same_order_and_shapes():
    """Kernel then bias, layer by layer, with equal shapes, so weights copy one for one."""
    keras_shapes = shapes(build_network(NUM_ACTIONS))
    assert shapes(build_network_tf_layers(NUM_ACTIONS)) == keras_shapes
    assert [len(shape) for shape in keras_shapes] == [4, 1, 4, 1, 2, 1, 2, 1]


def test_copied_weights_give_the_same_q_values(copied_pair):
    """After copying variables from one builder's model to the other's, Q-values agree."""
    keras_model, ops_model = copied_pair
    batch = states(4, seed=2)
    expected = q_values(keras_model, batch)
    assert np.ptp(expected) > 0.01, "the Q-values are all alike, so the comparison is weak"
    np.testing.assert_allclose(q_values(ops_model, batch), expected, rtol=1e-5, atol=1e-5)


def reference_q_values(variables, batch):
    """The documented network in NumPy: x/255 less each frame's background, conv 8x8/4, conv 4x4/2 (valid, ReLU), dense, linear."""
    return reference_q_values_of_scaled(variables, (batch - backgrounds(batch)[:, None, None, :]) / 255.0)


def reference_q_values_of_scaled(variables, x):
    """The network after its input's scaling and centring: conv 8x8/4, conv 4x4/2 (valid, ReLU), dense, linear."""
    k1, b1, k2, b2, w3, b3, w4, b4 = (np.asarray(variable, np.float64) for variable in variables)
    for kernel, bias, stride in ((k1, b1, 4), (k2, b2, 2)):
        size = kernel.shape[0]
        patches = sliding_window_view(x, (size, size), axis=(1, 2))[:, ::stride, ::stride]
        # patches: (b, out, out, channels, size, size); kernel: (size, size, channels, filters)
        x = np.maximum(np.einsum("bhwcij,ijcf->bhwf", patches, kernel) + bias, 0.0)
    x = np.maximum(x.reshape(len(x), -1) @ w3 + b3, 0.0)
    return x @ w4 + b4


def backgrounds(batch):
    """Each frame's most common value among every BACKGROUND_STRIDE-th pixel of its rows and columns, the lowest on a tie."""
    stride = build_model.BACKGROUND_STRIDE
    sample = batch[:, ::stride, ::stride, :]
    return np.array([[np.bincount(sample[i, ..., f].ravel(), minlength=256).argmax() for f in range(batch.shape[-1])]
                     for i in range(len(batch))], np.float64)


def test_both_builders_compute_the_documented_network(copied_pair):
    """Q-values equal a NumPy forward pass that scales uint8 frames by 1/255 inside."""
    keras_model, ops_model = copied_pair
    batch = states(2, seed=3)
    expected = reference_q_values(keras_model.trainable_variables, batch)
    for model in copied_pair:
        np.testing.assert_allclose(q_values(model, batch), expected, rtol=1e-4, atol=1e-5)


def test_numpy_forward_pass_for_acting_matches_the_model(copied_pair):
    """q_values_numpy, which the actor-learners act with, gives the Keras model's Q-values."""
    keras_model, _ = copied_pair
    batch = states(3, seed=4)
    weights = [variable.numpy() for variable in keras_model.trainable_variables]
    numpy_q = np.stack([build_model.q_values_numpy(weights, state) for state in batch])
    np.testing.assert_allclose(numpy_q, q_values(keras_model, batch), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(numpy_q, reference_q_values(weights, batch), rtol=1e-4, atol=1e-5)
    # a state that is not one C-ordered block of memory gives the same values
    np.testing.assert_allclose(build_model.q_values_numpy(weights, np.asfortranarray(batch[0])), numpy_q[0])


@pytest.mark.parametrize("builder", BUILDERS, ids=lambda builder: builder.__name__)
def test_input_is_scaled_and_centred_inside_the_model(builder):
    """Raw uint8 frames go in; a frame brightened by a constant gives the same values, its contrast does not."""
    network = builder(NUM_ACTIONS)
    randomize(network, seed=4)
    assert network.inputs[0].dtype == "uint8"
    batch = states(1, seed=5) // 2  # room to brighten every pixel
    brighter, contrast = batch.copy(), batch.copy()
    brighter[..., 1] += 100  # one frame of the stack, as a flash would
    contrast[..., 1] *= 2
    q = q_values(network, batch)
    np.testing.assert_allclose(q, reference_q_values(network.trainable_variables, batch), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(q_values(network, brighter), q, rtol=1e-4, atol=1e-5)
    assert not np.allclose(q_values(network, contrast), q, rtol=1e-4, atol=1e-5)
    weights = [variable.numpy() for variable in network.trainable_variables]
    np.testing.assert_allclose(build_model.q_values_numpy(weights, brighter[0]), q[0], rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("builder", BUILDERS, ids=lambda builder: builder.__name__)
def test_each_frame_is_centred_on_its_most_common_value_not_its_mean(builder):
    """Bright objects on a grey or black background: the background, not the frame's mean, goes to zero."""
    network = builder(NUM_ACTIONS)
    randomize(network, seed=6)
    rng = np.random.default_rng(7)
    backgrounds_set = np.array([87, 0, 87, 0], np.uint8)  # Pong's grey, Breakout's black
    state = np.broadcast_to(backgrounds_set, (1, FRAME_SIZE, FRAME_SIZE, 4)).copy()
    objects = rng.random(state.shape) < 0.3  # bright objects on 30% of the pixels: the mean is well above the background
    state[objects] = 236
    centred = (state.astype(np.float32) - backgrounds_set) / 255.0
    mean_centred = state / 255.0 - (state / 255.0).mean(axis=(1, 2), keepdims=True)
    weights = [variable.numpy() for variable in network.trainable_variables]

    expected = reference_q_values_of_scaled(weights, centred)
    np.testing.assert_allclose(q_values(network, state), expected, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(build_model.q_values_numpy(weights, state[0]), expected[0], rtol=1e-4, atol=1e-5)
    assert not np.allclose(reference_q_values_of_scaled(weights, mean_centred), expected, rtol=1e-3, atol=1e-3)


@pytest.mark.skipif(not os.path.exists("/proc/self/maps"), reason="counts the process's memory maps (Linux)")
@pytest.mark.parametrize("builder", BUILDERS, ids=lambda builder: builder.__name__)
def test_an_xla_compiled_pass_compiles_once_whatever_the_states_hold(builder):
    """Each program XLA compiles keeps memory maps for good: a pass that compiled again for new states
    (a bincount's size follows the largest value counted) ran a process out of them within minutes."""
    network = builder(NUM_ACTIONS)
    forward = tf.function(network, jit_compile=True)
    rng = np.random.default_rng(8)
    batch = states(40, seed=8)
    batch[rng.random(batch.shape) < 0.7] = 0  # mostly background, as game frames are
    forward(batch[:1])  # compiled here, once

    def memory_maps():
        with open("/proc/self/maps") as maps:
            return sum(1 for _ in maps)

    before = memory_maps()
    for index in range(1, len(batch)):
        forward(batch[index : index + 1]).numpy()
    assert memory_maps() - before < 40


@pytest.mark.parametrize("builder", BUILDERS, ids=lambda builder: builder.__name__)
@pytest.mark.parametrize("num_actions", [1, 3, 18])
def test_number_of_actions_changes_only_the_output_layer(builder, num_actions):
    """Other action counts change the last kernel and bias to (256, n) and (n,), nothing else."""
    base = shapes(build_network(NUM_ACTIONS))
    network = builder(num_actions)
    changed = shapes(network)
    assert changed[:-2] == base[:-2]
    assert changed[-2:] == [(build_model.HIDDEN_UNITS, num_actions), (num_actions,)]
    assert q_values(network, states(2)).shape == (2, num_actions)


@pytest.mark.parametrize("builder", BUILDERS, ids=lambda builder: builder.__name__)
def test_history_length_changes_only_the_first_kernel(builder):
    """m frames per state: the first kernel is (8, 8, m, 16); a (b, 84, 84, m) batch is accepted."""
    base = shapes(build_network(NUM_ACTIONS))
    network = builder(NUM_ACTIONS, agent_history_length=2)
    changed = shapes(network)
    assert changed[0] == (8, 8, 2, 16)
    assert changed[1:] == base[1:]
    assert q_values(network, states(1, history=2)).shape == (1, NUM_ACTIONS)


@pytest.mark.parametrize("history", [1, 6])  # 6: past the 4 channels of the NumPy pass's fast frame means
def test_numpy_forward_pass_matches_the_model_for_other_history_lengths(history):
    network = build_network(NUM_ACTIONS, agent_history_length=history)
    randomize(network, seed=6)
    batch = states(2, history=history, seed=7)
    weights = [variable.numpy() for variable in network.trainable_variables]
    numpy_q = np.stack([build_model.q_values_numpy(weights, state) for state in batch])
    np.testing.assert_allclose(numpy_q, reference_q_values(weights, batch), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("builder", BUILDERS, ids=lambda builder: builder.__name__)
@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"num_actions": 0}, "num_actions"),
        ({"num_actions": -1}, "num_actions"),
        ({"num_actions": 6, "agent_history_length": 0}, "agent_history_length"),
    ],
)
def test_invalid_sizes_raise_value_error(builder, kwargs, message):
    """No actions, or no frames per state, is rejected before any layer is built."""
    with pytest.raises(ValueError, match=message):
        builder(**kwargs)
