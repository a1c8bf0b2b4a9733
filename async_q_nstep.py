"""Asynchronous n-step Q-learning (Mnih et al. 2016, supplementary Algorithm S2).

Each actor-learner thread starts with theta' <- theta (its local network), then repeats:

    act epsilon-greedily under theta' for up to t_max steps or to a terminal state
    R <- 0 at a terminal state, else max_a Q(s_t, a; theta-minus)
    for i = t-1 down to t_start:  R <- r_i + gamma * R
    d theta <- gradient of sum_i (R_i - Q(s_i, a_i; theta'))^2 w.r.t. theta'
    theta <- RMSProp(theta, d theta)  (shared statistics);  theta' <- theta
    T <- T + steps;  every I_target steps of T: theta-minus <- theta

theta' does not change during a segment, so the per-step gradients the paper
accumulates sum to one gradient of the summed loss: one batched call is exact.

A state is terminal at game over and, with --episodic_life (the default), at
a lost life, after which the game goes on; a time-limit cut bootstraps.

    python async_q_nstep.py --game BreakoutNoFrameskip-v4
    python async_q_nstep.py --game BreakoutNoFrameskip-v4 --testing
"""

import sys

import numpy as np

from async_runtime import driver, flags
from async_runtime.actor_learner import clip_reward
from async_runtime.models import Q_NETWORK
from async_runtime.schedules import crossed


def parse_args(argv=None):
    parser = flags.common_parser(__doc__.split("\n")[0], default_experiment="async_q_nstep")
    parser.add_argument("--num_steps_Q", type=int, default=5, help="t_max: agent steps per segment")
    return flags.parse_args(parser, argv)


def model(args):
    """The Q-network and its loss, the squared TD error."""
    return Q_NETWORK


def max_segment_steps(args):
    """The most agent steps one update learns from (t_max): the size of its gradient batch."""
    return args.num_steps_Q


def n_step_returns(rewards, bootstrap_value, gamma):
    """R_i = r_i + gamma * R_{i+1}, backwards from R_t = bootstrap_value."""
    returns = np.empty(len(rewards), np.float32)
    R = bootstrap_value
    for i in reversed(range(len(rewards))):
        R = rewards[i] + gamma * R
        returns[i] = R
    return returns


def actor_learner_thread(learner, shared, args):
    state = learner.reset()
    learner.sync_local()
    while not shared.should_stop():
        states, actions, rewards = [], [], []
        terminated = truncated = False
        while len(states) < args.num_steps_Q and not (terminated or truncated):
            action = learner.act(state)
            next_state, reward, terminated, truncated = learner.step(action)
            states.append(state)
            actions.append(action)
            rewards.append(clip_reward(reward))
            state = next_state

        # A time-limit cut (truncated) is not the end of the game: it bootstraps.
        bootstrap_value = 0.0 if terminated else float(learner.max_target_q(state[None])[0])
        returns = n_step_returns(rewards, bootstrap_value, args.gamma)
        learner.learn(states, actions, returns)

        old_T, T = shared.T.add(len(states))
        if crossed(old_T, T, args.target_network_update_frequency):
            shared.update_target()
        if terminated or truncated:
            state = learner.reset()  # a new game, or the same one after a lost life


if __name__ == "__main__":
    arguments = parse_args()
    sys.exit(driver.main(arguments, actor_learner_thread, max_segment_steps(arguments), model(arguments)))
