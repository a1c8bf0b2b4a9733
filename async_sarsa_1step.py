"""Asynchronous one-step Sarsa (Mnih et al. 2016, Algorithm 1 with the Sarsa target).

Each actor-learner thread starts with theta' <- theta and picks a in s
epsilon-greedily under theta', then repeats:

    take a in s, observe r and s'; pick a' in s' epsilon-greedily under theta'
    y <- r at a terminal s', else r + gamma * Q(s', a'; theta-minus)
    d theta <- d theta + gradient of (y - Q(s, a; theta'))^2 w.r.t. theta'
    s, a <- s', a'
    every I_AsyncUpdate steps, or at a terminal state:
        theta <- RMSProp(theta, d theta); clear d theta; theta' <- theta
    T <- T + 1;  every I_target steps of T: theta-minus <- theta

The only change from one-step Q-learning is the target: Q-learning values
s' by its best action, Sarsa by the action the thread will play there,
exploration included, so it learns the value of the policy it follows.
theta' does not change between updates, so the accumulated gradient is one
batched gradient, as in async_q_1step.py, whose flags this script takes.

A state is terminal at game over and, with --episodic_life (the default), at
a lost life, after which the game goes on; a time-limit cut bootstraps.

    python async_sarsa_1step.py --game BreakoutNoFrameskip-v4
    python async_sarsa_1step.py --game BreakoutNoFrameskip-v4 --testing
"""

import sys

import numpy as np

import async_q_1step
from async_q_1step import max_segment_steps, model, one_step_targets
from async_runtime import driver
from async_runtime.actor_learner import clip_reward
from async_runtime.schedules import crossed


def parse_args(argv=None):
    return async_q_1step.parse_args(argv, __doc__.split("\n")[0], default_experiment="async_sarsa_1step")


def actor_learner_thread(learner, shared, args):
    state = learner.reset()
    learner.sync_local()
    action = learner.act(state)
    while not shared.should_stop():
        states, actions, rewards, next_states, next_actions, terminals = [], [], [], [], [], []
        episode_over = False
        while len(states) < args.async_update_frequency and not episode_over:
            next_state, reward, terminated, truncated = learner.step(action)
            # a' is chosen before the update, under the theta' that chose a. A
            # terminal s' needs none; at a time-limit cut it is not played,
            # but the bootstrap values it.
            next_action = 0 if terminated else learner.act(next_state)
            states.append(state)
            actions.append(action)
            rewards.append(clip_reward(reward))
            next_states.append(next_state)
            next_actions.append(next_action)
            terminals.append(terminated)
            episode_over = terminated or truncated
            state, action = next_state, next_action

        next_q = learner.target_q_values(np.stack(next_states))[np.arange(len(states)), next_actions]
        targets = one_step_targets(rewards, terminals, next_q, args.gamma)
        learner.learn(states, actions, targets)

        old_T, T = shared.T.add(len(states))
        if crossed(old_T, T, args.target_network_update_frequency):
            shared.update_target()
        if episode_over:
            state = learner.reset()  # a new game, or the same one after a lost life
            action = learner.act(state)


if __name__ == "__main__":
    arguments = parse_args()
    sys.exit(driver.main(arguments, actor_learner_thread, max_segment_steps(arguments), model(arguments)))
