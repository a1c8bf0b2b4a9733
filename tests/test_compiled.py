"""The hot loop's TensorFlow calls: the fast, internal call is used only where it gives what the public call gives."""

import numpy as np
import pytest
import tensorflow as tf

from async_runtime import compiled
from async_runtime.compiled import CompiledOps
from build_model import build_network

STATES = 5


@pytest.fixture
def network():
    return build_network(num_actions=3)


def example_arguments(network, rng):
    weights = [tf.constant(value.numpy()) for value in network.trainable_variables]
    states = tf.constant(rng.integers(0, 256, (STATES, 84, 84, 4), dtype=np.uint8))
    masks = tf.constant(np.eye(3, dtype=np.float32)[rng.integers(0, 3, STATES)])
    targets = tf.constant(rng.normal(size=STATES).astype(np.float32))
    return weights, states, masks, targets


def test_the_fast_and_the_public_call_give_the_same_gradient_and_q_values(network, capsys):
    rng = np.random.default_rng(0)
    weights, states, masks, targets = example_arguments(network, rng)
    fast_ops, public_ops = CompiledOps(network, clip_norm=1.0), CompiledOps(network, clip_norm=1.0, fast_calls=False)
    flat = [*weights, states, masks, targets]
    fast = fast_ops.bind(fast_ops.gradient, weights, states, masks, targets)(*flat)
    public = public_ops.bind(public_ops.gradient, weights, states, masks, targets)(*flat)
    assert fast_ops._checked["gradient"], "the fast call is in use on this TensorFlow"
    assert len(fast) == len(public) == 1 + len(weights) + 1  # loss, gradients, clip factor
    for a, b in zip(fast, public):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert float(fast[0]) > 0 and 0 < float(fast[-1]) < 1, "a real loss, and a gradient that gets clipped"

    fast_q = fast_ops.bind(fast_ops.q_values, weights, states)(*weights, states)
    public_q = public_ops.bind(public_ops.q_values, weights, states)(*weights, states)
    np.testing.assert_array_equal(np.asarray(fast_q[0]), np.asarray(public_q[0]))
    assert capsys.readouterr().err == ""


def test_a_tensorflow_without_the_fast_call_gets_the_public_call_and_one_warning(network, monkeypatch, capsys):
    def missing(concrete):
        raise AttributeError("inference_fn")

    monkeypatch.setattr(compiled, "_fast_call", missing)
    check_falls_back(network, capsys, "has no ConcreteFunction.inference_fn.call_flat")


def test_a_fast_call_that_disagrees_is_not_used(network, monkeypatch, capsys):
    def off_by_a_little(concrete):
        call = concrete.inference_fn.call_flat
        return lambda *flat: [value * 1.001 for value in call(*flat)]

    monkeypatch.setattr(compiled, "_fast_call", off_by_a_little)
    check_falls_back(network, capsys, "gives other results")


def check_falls_back(network, capsys, reason):
    weights, states, masks, targets = example_arguments(network, np.random.default_rng(1))
    ops = CompiledOps(network, clip_norm=1.0)
    call = ops.bind(ops.gradient, weights, states, masks, targets)
    again = ops.bind(ops.gradient, weights, states, masks, targets)  # a second thread: checked once
    assert not ops._checked["gradient"]
    loss, *_ = call(*weights, states, masks, targets)
    expected = ops.gradient(weights, states, masks, targets)[0]
    assert float(loss) == float(expected) == float(again(*weights, states, masks, targets)[0])
    warnings = capsys.readouterr().err.splitlines()
    assert len(warnings) == 1 and warnings[0].startswith("warning: TensorFlow") and reason in warnings[0]
