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

    python async_q_nstep.py --game BreakoutNoFrameskip-v4 --num_actor_threads 4
    python async_q_nstep.py --game BreakoutNoFrameskip-v4 --testing
"""

import sys

import numpy as np

import async_runtime as rt


def parse_args(argv=None):
    parser = rt.common_parser(__doc__.split("\n")[0], default_experiment="async_q_nstep")
    parser.add_argument("--num_steps_Q", type=int, default=5, help="t_max: agent steps per segment")
    return rt.parse_args(parser, argv)


def n_step_returns(rewards, bootstrap_value, gamma):
    """R_i = r_i + gamma * R_{i+1}, backwards from R_t = bootstrap_value."""
    returns = np.empty(len(rewards), np.float32)
    R = bootstrap_value
    for i in reversed(range(len(rewards))):
        R = rewards[i] + gamma * R
        returns[i] = R
    return returns


def actor_learner(worker, shared, args):
    state = worker.reset()
    worker.sync_local()
    while not shared.should_stop():
        states, actions, rewards = [], [], []
        terminated = truncated = False
        while len(states) < args.num_steps_Q and not (terminated or truncated):
            action = worker.act(state)
            next_state, reward, terminated, truncated = worker.step(action)
            states.append(state)
            actions.append(action)
            rewards.append(rt.clip_reward(reward))
            state = next_state

        # A time-limit cut (truncated) is not the end of the game: it bootstraps.
        bootstrap_value = 0.0 if terminated else float(worker.max_target_q(state[None])[0])
        returns = n_step_returns(rewards, bootstrap_value, args.gamma)
        worker.apply_gradient_and_sync(states, actions, returns)

        old_T, T = shared.T.add(len(states))
        if rt.crossed(old_T, T, args.target_network_update_frequency):
            shared.update_target()
        if terminated or truncated:
            state = worker.reset()  # a new game, or the same one after a lost life


if __name__ == "__main__":
    arguments = parse_args()
    sys.exit(rt.main(arguments, actor_learner, batch_size=arguments.num_steps_Q))
