"""A3C in process: its loss by hand, its returns, its sampled actions, and the network it saves.

The real-process tests (train, resume, --testing, Catch) are with the other
learners', in test_scripts.py and test_learning.py.
"""

import re

import keras
import numpy as np
import pytest
import tensorflow as tf

import async_a3c
import async_q_nstep
from async_runtime.actor_learner import ActorLearner
from async_runtime.checkpoints import Checkpoints
from async_runtime.errors import CheckpointMismatch
from async_runtime.models import actor_critic_loss
from async_runtime.shared_state import SharedState
from build_model import build_actor_critic_network, policy_and_value_numpy

GAMMA = 0.9

# Two real rows and one row of padding (all-zero mask).
LOGITS = np.array([[1.0, 0.0, -1.0], [0.5, 0.5, 0.0], [3.0, -2.0, 0.0]], np.float32)
VALUES = np.array([[0.5], [-1.0], [7.0]], np.float32)
MASKS = np.array([[0, 1, 0], [1, 0, 0], [0, 0, 0]], np.float32)
RETURNS = np.array([2.0, -0.5, 100.0], np.float32)


def loss_and_gradients(entropy_beta, value_loss_weight):
    logits, values = tf.constant(LOGITS), tf.constant(VALUES)
    with tf.GradientTape() as tape:
        tape.watch([logits, values])
        loss = actor_critic_loss(
            [logits, values], tf.constant(MASKS), tf.constant(RETURNS), entropy_beta, value_loss_weight
        )
    return float(loss), *(gradient.numpy() for gradient in tape.gradient(loss, [logits, values]))


def softmax(logits):
    exp = np.exp(logits - logits.max(axis=1, keepdims=True))
    return exp / exp.sum(axis=1, keepdims=True)


def test_actor_critic_loss_by_hand():
    """-log pi(a|s) (R - V) + w (R - V)^2 - beta H(pi), summed over the real rows only."""
    pi = softmax(LOGITS[:2].astype(np.float64))
    advantages = RETURNS[:2] - VALUES[:2, 0]  # 1.5 and 0.5
    policy = -(np.log(pi[0, 1]) * advantages[0] + np.log(pi[1, 0]) * advantages[1])
    value = np.sum(advantages**2)  # 2.5
    entropy = -np.sum(pi * np.log(pi))
    loss, _, _ = loss_and_gradients(entropy_beta=0.01, value_loss_weight=0.25)
    assert loss == pytest.approx(policy + 0.25 * value - 0.01 * entropy, rel=1e-5)


def test_the_advantage_is_a_constant_for_the_policy_gradient():
    """Without the entropy bonus, d loss / d logits = -(onehot(a) - pi) (R - V), and V's gradient
    comes from the value loss alone: 2 w (V - R). Padding rows get no gradient."""
    _, logits_gradient, values_gradient = loss_and_gradients(entropy_beta=0.0, value_loss_weight=0.25)
    pi = softmax(LOGITS[:2].astype(np.float64))
    advantages = RETURNS[:2] - VALUES[:2, 0]
    np.testing.assert_allclose(logits_gradient[:2], -(MASKS[:2] - pi) * advantages[:, None], rtol=1e-5)
    np.testing.assert_allclose(values_gradient[:2, 0], 2 * 0.25 * (VALUES[:2, 0] - RETURNS[:2]), rtol=1e-5)
    assert not logits_gradient[2].any() and not values_gradient[2].any()


def test_the_entropy_bonus_pushes_towards_a_uniform_policy():
    """With the bonus alone (no advantage, no value loss) a step down the gradient raises the entropy."""
    logits = tf.Variable(LOGITS[:2])
    masks, values = tf.constant(MASKS[:2]), tf.constant(VALUES[:2])

    def entropy():
        pi = tf.nn.softmax(logits)
        return float(-tf.reduce_sum(pi * tf.math.log(pi)))

    before = entropy()
    with tf.GradientTape() as tape:
        loss = actor_critic_loss([logits, values], masks, values[:, 0], 0.01, 0.25)
    logits.assign_sub(10.0 * tape.gradient(loss, logits))
    assert entropy() > before


def make_learner(*flags):
    args = async_a3c.parse_args(["--game", "Catch-v0", "--num_actor_threads", "1", "--gamma", str(GAMMA), *flags])
    shared = SharedState(args, num_actions=3, model=async_a3c.model(args))
    return shared, ActorLearner(0, shared, async_a3c.max_segment_steps(args))


def test_segments_bootstrap_from_the_threads_own_value_except_at_terminal_states():
    """Catch lasts 9 steps: a 5-step segment bootstrapped by V(s_5; theta'), then 4 steps to a terminal state.
    There is no target network."""
    shared, learner = make_learner("--learning_rate", "0.01")
    assert shared.target is None
    calls, bootstraps = [], []
    learn, value = learner.learn, learner.value

    def recording_value(state):
        bootstraps.append((value(state), [array.copy() for array in learner.local.arrays]))
        return bootstraps[-1][0]

    def recording_learn(states, actions, returns):
        calls.append((np.array(states), list(actions), np.array(returns)))
        learn(states, actions, returns)
        if len(calls) == 2:
            shared.stop_event.set()

    learner.value, learner.learn = recording_value, recording_learn
    async_a3c.actor_learner_thread(learner, shared, shared.args)

    (states1, _, returns1), (states2, _, returns2) = calls
    assert len(states1) == 5 and len(states2) == 4
    (bootstrap, theta_prime), = bootstraps  # the terminal segment asked for no value
    np.testing.assert_allclose(returns1, GAMMA ** np.arange(5, 0, -1) * bootstrap, rtol=1e-6)
    final_reward = returns2[-1]
    assert final_reward in (-1.0, 1.0)
    np.testing.assert_allclose(returns2, final_reward * GAMMA ** np.arange(3, -1, -1), rtol=1e-6)
    assert shared.T.value == 9
    network = build_actor_critic_network(3)  # V(s_5) by Keras, at the theta' the thread held
    network.set_weights(theta_prime)
    _, keras_value = network(states2[:1])
    assert bootstrap == pytest.approx(float(keras_value[0, 0]), rel=1e-5, abs=1e-7)


def test_actions_are_sampled_from_the_policy():
    shared, learner = make_learner()
    state = np.zeros((84, 84, 4), np.uint8)
    policy_bias = shared.theta.arrays[-3]  # the policy head's bias: the torso's output is 0 on a black state
    policy_bias[:] = np.log([0.7, 0.2, 0.1])
    learner.sync_local()
    actions = [learner.sample_action(state) for _ in range(20_000)]
    frequencies = np.bincount(actions, minlength=3) / len(actions)
    np.testing.assert_allclose(frequencies, [0.7, 0.2, 0.1], atol=0.015)


def test_a3c_checkpoints_hold_no_target_network_export_both_heads_and_refuse_a_q_learners(tmp_path):
    shared, _ = make_learner()
    a3c_path = Checkpoints(shared, str(tmp_path / "a3c")).save()
    names = [name for name, _ in tf.train.list_variables(a3c_path)]
    assert any(name.startswith("global_network/") for name in names)
    assert not any(name.startswith("target_network/") for name in names)

    exported = keras.models.load_model(a3c_path + ".keras")  # the policy's logits and V(s), for any Keras user
    state = np.random.default_rng(0).integers(0, 256, (1, 84, 84, 4), dtype=np.uint8)
    probabilities, value = policy_and_value_numpy(shared.theta.arrays, state[0])
    logits, exported_value = exported(state)
    np.testing.assert_allclose(tf.nn.softmax(logits)[0], probabilities, rtol=1e-5, atol=1e-7)
    assert float(exported_value[0, 0]) == pytest.approx(value, rel=1e-5, abs=1e-6)

    restored, _ = make_learner()
    assert Checkpoints(restored, str(tmp_path / "a3c")).restore_latest() == a3c_path
    assert all(np.array_equal(a, b) for a, b in zip(restored.theta.arrays, shared.theta.arrays))

    q_args = async_q_nstep.parse_args(["--game", "Catch-v0"])
    Checkpoints(SharedState(q_args, num_actions=3), str(tmp_path / "q")).save()
    with pytest.raises(CheckpointMismatch, match="another kind of learner"):
        Checkpoints(restored, str(tmp_path / "q")).restore_latest()
    with pytest.raises(CheckpointMismatch, match="another kind of learner"):
        Checkpoints(SharedState(q_args, num_actions=3), str(tmp_path / "a3c")).restore_latest()


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--value_loss_weight", "0"], r"--value_loss_weight must be positive, got 0"),
        (["--entropy_beta", "-0.01"], r"--entropy_beta must be 0 or more, got -0.01"),
        (["--num_steps", "0"], r"--num_steps must be positive, got 0"),
        (["--final_epsilon_choices", "0.1"], r"unrecognized arguments: --final_epsilon_choices"),
        (["--target_network_update_frequency", "10"], r"unrecognized arguments: --target_network_update_frequency"),
    ],
)
def test_a3c_flags_are_validated_with_one_line(flags, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        async_a3c.parse_args(["--game", "Catch-v0", *flags])
    assert exit_info.value.code == 2
    assert re.search(message, capsys.readouterr().err.strip().splitlines()[-1])
