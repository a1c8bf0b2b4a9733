"""Asynchronous one-step Q-learning (Mnih et al. 2016, Algorithm 1).

Each actor-learner thread starts with theta' <- theta (its local network), then repeats:

    act epsilon-greedily under theta' in state s, observe r and s'
    y <- r at a terminal s', else r + gamma * max_a' Q(s', a'; theta-minus)
    d theta <- d theta + gradient of (y - Q(s, a; theta'))^2 w.r.t. theta'
    every I_AsyncUpdate steps, or at a terminal state:
        theta <- RMSProp(theta, d theta); clear d theta; theta' <- theta
    T <- T + 1;  every I_target steps of T: theta-minus <- theta

The paper's Algorithm 1 acts and differentiates at theta itself; here, as in
its n-step algorithm, a thread works on theta', taken after each update.
theta' does not change between updates, so the accumulated gradient is one
gradient of the summed loss over the steps since the last update: one
batched call is exact. The paper updates every 5 steps (I_AsyncUpdate); the
seed's default, kept here, is 32.

A state is terminal at game over and, with --episodic_life (the default), at
a lost life, after which the game goes on; a time-limit cut bootstraps.

    python async_q_1step.py --game BreakoutNoFrameskip-v4
    python async_q_1step.py --game BreakoutNoFrameskip-v4 --testing
"""

import sys

import numpy as np

from async_runtime import driver, flags
from async_runtime.actor_learner import clip_reward
from async_runtime.models import Q_NETWORK
from async_runtime.schedules import crossed


def parse_args(argv=None, description=__doc__.split("\n")[0], default_experiment="async_q_1step"):
    parser = flags.common_parser(description, default_experiment)
    parser.add_argument(
        "--async_update_frequency",
        type=int,
        default=32,
        help="I_AsyncUpdate: agent steps between gradient applications (the paper used 5)",
    )
    return flags.parse_args(parser, argv)


def model(args):
    """The Q-network and its loss, the squared TD error."""
    return Q_NETWORK


def max_segment_steps(args):
    """The most agent steps one update learns from (I_AsyncUpdate): the size of its gradient batch."""
    return args.async_update_frequency


def one_step_targets(rewards, terminals, next_max_q, gamma):
    """y = r at a terminal next state, else r + gamma * max_a' Q(s', a'; theta-minus)."""
    rewards = np.asarray(rewards, np.float32)
    not_terminal = 1.0 - np.asarray(terminals, np.float32)
    return rewards + gamma * not_terminal * np.asarray(next_max_q, np.float32)


def actor_learner_thread(learner, shared, args):
    state = learner.reset()
    learner.sync_local()
    while not shared.should_stop():
        states, actions, rewards, next_states, terminals = [], [], [], [], []
        episode_over = False
        while len(states) < args.async_update_frequency and not episode_over:
            action = learner.act(state)
            next_state, reward, terminated, truncated = learner.step(action)
            states.append(state)
            actions.append(action)
            rewards.append(clip_reward(reward))
            next_states.append(next_state)
            # A time-limit cut (truncated) is not the end of the game: it bootstraps.
            terminals.append(terminated)
            episode_over = terminated or truncated
            state = next_state

        next_max_q = learner.max_target_q(np.stack(next_states))
        targets = one_step_targets(rewards, terminals, next_max_q, args.gamma)
        learner.learn(states, actions, targets)

        old_T, T = shared.T.add(len(states))
        if crossed(old_T, T, args.target_network_update_frequency):
            shared.update_target()
        if episode_over:
            state = learner.reset()  # a new game, or the same one after a lost life


if __name__ == "__main__":
    arguments = parse_args()
    sys.exit(driver.main(arguments, actor_learner_thread, max_segment_steps(arguments), model(arguments)))
