"""What a learner's network is and how it learns: the value-based learners' Q-network, or A3C's actor-critic.

The runtime builds, trains, saves and tests whichever it is given; a
learner script names its own (the Q learners take ``Q_NETWORK``).

Both losses live here, not in the scripts: a script that imported TensorFlow
itself, before async_runtime, would load it with its start-up notices
(async_runtime/__init__.py).
"""

import dataclasses
from collections.abc import Callable

import numpy as np
import tensorflow as tf

from build_model import build_network, policy_and_value_numpy, q_values_numpy


@dataclasses.dataclass(frozen=True)
class Model:
    """One kind of network and its loss.

    ``loss(outputs, action_masks, targets)`` is traced inside the gradient
    function: ``outputs`` are the network's, on a batch of states;
    ``action_masks`` one-hot rows, all zero for padding; ``targets`` one
    return per row. It returns the loss summed over the real rows.
    """

    build_network: Callable  # (num_actions, agent_history_length, portable=False) -> keras.Model
    loss: Callable
    loss_tag: str  # its TensorBoard tag
    value_tag: str  # the tag of an episode's mean state value, as acting estimates it
    target_network: bool  # whether it keeps theta-minus
    explores_epsilon_greedily: bool  # else it samples its policy
    outputs_numpy: Callable  # (weights, state) -> the network's outputs on one state, as one row


def q_learning_loss(q_values, action_masks, targets):
    """sum_i (y_i - Q(s_i, a_i))^2, each row's Q selected by its mask."""
    return tf.reduce_sum(action_masks * tf.square(targets[:, None] - q_values))


def actor_critic_loss(outputs, action_masks, returns, entropy_beta, value_loss_weight):
    """A3C's loss summed over a segment (async_a3c.py); all-zero mask rows are padding and add nothing.

    -log pi(a_i | s_i) (R_i - V(s_i)) with the advantage held constant, plus
    value_loss_weight (R_i - V(s_i))^2, minus entropy_beta H(pi(. | s_i)).
    """
    policy_logits, values = outputs
    values = values[:, 0]
    real_rows = tf.reduce_sum(action_masks, axis=1)
    log_policy = tf.nn.log_softmax(policy_logits)
    advantages = tf.stop_gradient(returns - values)
    policy_loss = -tf.reduce_sum(tf.reduce_sum(action_masks * log_policy, axis=1) * advantages)
    value_loss = tf.reduce_sum(real_rows * tf.square(returns - values))
    entropy = -tf.reduce_sum(real_rows * tf.reduce_sum(tf.exp(log_policy) * log_policy, axis=1))
    return policy_loss + value_loss_weight * value_loss - entropy_beta * entropy


def actor_critic_outputs_numpy(weights, state):
    """pi(. | s) and V(s) as one row."""
    probabilities, value = policy_and_value_numpy(weights, state)
    return np.append(probabilities, value)


Q_NETWORK = Model(
    build_network=build_network,
    loss=q_learning_loss,
    loss_tag="losses/td_loss",
    value_tag="episode/mean_max_q",
    target_network=True,
    explores_epsilon_greedily=True,
    outputs_numpy=q_values_numpy,
)
