"""What a learner's network is and how it learns: the value-based learners' Q-network, or A3C's actor-critic.

The runtime builds, trains, saves and tests whichever it is given; a
learner script names its own (the Q learners take ``Q_NETWORK``).
"""

import dataclasses
from collections.abc import Callable

import tensorflow as tf

from build_model import build_network


@dataclasses.dataclass(frozen=True)
class Model:
    """One kind of network and its loss.

    ``loss(outputs, action_masks, targets)`` is traced inside the gradient
    function: ``outputs`` are the network's, on a batch of states;
    ``action_masks`` one-hot rows, all zero for padding; ``targets`` one
    return per row. It returns the loss summed over the real rows.
    """

    build_network: Callable  # (num_actions, agent_history_length) -> keras.Model
    loss: Callable
    loss_tag: str  # its TensorBoard tag
    value_tag: str  # the tag of an episode's mean state value, as acting estimates it
    target_network: bool  # whether it keeps theta-minus
    explores_epsilon_greedily: bool  # else it samples its policy


def q_learning_loss(q_values, action_masks, targets):
    """sum_i (y_i - Q(s_i, a_i))^2, each row's Q selected by its mask."""
    return tf.reduce_sum(action_masks * tf.square(targets[:, None] - q_values))


Q_NETWORK = Model(
    build_network=build_network,
    loss=q_learning_loss,
    loss_tag="losses/td_loss",
    value_tag="episode/mean_max_q",
    target_network=True,
    explores_epsilon_greedily=True,
)
