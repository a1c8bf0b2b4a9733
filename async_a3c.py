"""Asynchronous advantage actor-critic, A3C (Mnih et al. 2016, supplementary Algorithm S3, feed-forward).

One network (build_model.build_actor_critic_network) gives the policy
pi(a | s) and the value V(s), sharing every layer but the two outputs. Each
actor-learner thread starts with theta' <- theta, then repeats:

    act by sampling pi(. | s_t; theta') for up to t_max steps or to a terminal state
    R <- 0 at a terminal state, else V(s_t; theta')
    for i = t-1 down to t_start:  R <- r_i + gamma * R
    d theta <- gradient w.r.t. theta' of the summed loss over the segment,
        - log pi(a_i | s_i) * (R_i - V(s_i))         the policy gradient; the advantage is a constant
        + value_loss_weight * (R_i - V(s_i))^2        the value regression
        - entropy_beta * H(pi(. | s_i))               the entropy bonus, against early certainty
    theta <- RMSProp(theta, d theta)  (shared statistics);  theta' <- theta
    T <- T + steps

There is no target network and no epsilon: the policy explores by itself.
The paper leaves two settings open; taken from OpenAI's universe-starter-agent
(a3c.py), whose loss is summed over a segment as ours is: the value loss
weighs 0.25 (0.5 times its 1/2 (R - V)^2), and gradients are clipped to a
global norm of 40. The entropy weight 0.01 is the paper's; the learning rate
is 3e-4 (inside the paper's 1e-4 to 1e-2: OpenAI Baselines' A2C default of
7e-4 collapsed one Breakout seed in three) and RMSProp's epsilon 1e-5 is
Baselines' A2C default; TensorFlow's RMSProp adds epsilon under the square
root, as ours does. The seed's epsilon of 0.1 would swamp the policy head's
small mean squared gradients: with it A3C barely learned Breakout in an hour
(docs/learning-history.md).

A state is terminal at game over and, with --episodic_life (the default), at
a lost life, after which the game goes on; a time-limit cut bootstraps.

    python async_a3c.py --game BreakoutNoFrameskip-v4
    python async_a3c.py --game BreakoutNoFrameskip-v4 --testing
"""

import functools
import sys

from async_q_nstep import n_step_returns
from async_runtime import driver, flags
from async_runtime.actor_learner import clip_reward
from async_runtime.models import Model, actor_critic_loss, actor_critic_outputs_numpy
from build_model import build_actor_critic_network


def parse_args(argv=None):
    parser = flags.common_parser(__doc__.split("\n")[0], default_experiment="async_a3c", value_based=False)
    parser.add_argument("--num_steps", type=int, default=5, help="t_max: agent steps per segment")
    parser.add_argument("--entropy_beta", type=float, default=0.01, help="weight of the policy's entropy bonus")
    parser.add_argument(
        "--value_loss_weight", type=float, default=0.25, help="weight of the value loss (R - V(s))^2"
    )
    # 3e-4: at 7e-4 one Breakout seed in three collapsed, its hidden units dead (docs/plan.md)
    parser.set_defaults(learning_rate=3e-4, clip_norm=40.0)
    return flags.parse_args(parser, argv)


def max_segment_steps(args):
    """The most agent steps one update learns from (t_max): the size of its gradient batch."""
    return args.num_steps


def model(args):
    """The actor-critic network and its loss, weighted by the flags."""
    return Model(
        build_network=build_actor_critic_network,
        loss=functools.partial(
            actor_critic_loss, entropy_beta=args.entropy_beta, value_loss_weight=args.value_loss_weight
        ),
        loss_tag="losses/actor_critic_loss",
        value_tag="episode/mean_value",
        target_network=False,
        explores_epsilon_greedily=False,
        outputs_numpy=actor_critic_outputs_numpy,
    )


def actor_learner_thread(learner, shared, args):
    state = learner.reset()
    learner.sync_local()
    while not shared.should_stop():
        states, actions, rewards = [], [], []
        terminated = truncated = False
        while len(states) < args.num_steps and not (terminated or truncated):
            action = learner.sample_action(state)
            next_state, reward, terminated, truncated = learner.step(action)
            states.append(state)
            actions.append(action)
            rewards.append(clip_reward(reward))
            state = next_state

        # A time-limit cut (truncated) is not the end of the game: it bootstraps.
        bootstrap_value = 0.0 if terminated else learner.value(state)
        returns = n_step_returns(rewards, bootstrap_value, args.gamma)
        learner.learn(states, actions, returns)

        shared.T.add(len(states))
        if terminated or truncated:
            state = learner.reset()  # a new game, or the same one after a lost life


if __name__ == "__main__":
    arguments = parse_args()
    sys.exit(driver.main(arguments, actor_learner_thread, max_segment_steps(arguments), model(arguments)))
