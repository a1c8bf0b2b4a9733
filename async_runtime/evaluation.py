"""``--testing``: play a checkpoint's global network under the standard protocol and report its scores.

The protocol: game over ends an episode (all lives), up to --eval_noop_max
no-op frames start it, --eval_max_episode_frames cuts it, and with
probability --eval_epsilon an action is uniformly random. Otherwise the Q
learners take the greedy action, and A3C samples its policy, as it acts
while training (a greedy policy can stall: in Breakout, never pressing FIRE).
"""

import json
import os

import numpy as np
import tensorflow as tf

import atari_wrapper
from async_runtime.actor_learner import num_actions_of
from async_runtime.checkpoints import restore
from async_runtime.errors import UsageError
from async_runtime.flags import ensure_writable
from async_runtime.schedules import epsilon_greedy


def evaluate(args, model):
    """Play --num_eval_episodes with ``model``'s network; print and log each score and the summary."""
    num_actions = num_actions_of(args)
    network = model.build_network(num_actions, args.agent_history_length, portable=True)  # the checkpoint's layout
    if args.record_video:
        ensure_writable(args.record_video)
    path = args.checkpoint_file or tf.train.latest_checkpoint(os.path.join(args.checkpoint_dir, args.experiment))
    if path is None:
        raise UsageError(
            f"--testing needs a checkpoint: none in {os.path.join(args.checkpoint_dir, args.experiment)}; "
            "train first or pass --checkpoint_file"
        )
    restore(tf.train.Checkpoint(global_network=network), path, network)
    rng = np.random.default_rng(args.seed)
    # The NumPy pass the actor-learners act with: the same actions as training
    # takes, in half the time of a compiled TensorFlow call.
    weights = [variable.numpy() for variable in network.trainable_variables]

    if model.explores_epsilon_greedily:

        def policy_action(state):
            return int(np.argmax(model.outputs_numpy(weights, state)))

    else:

        def policy_action(state):
            return rng.choice(num_actions, p=model.outputs_numpy(weights, state)[:num_actions])

    print(f"testing {path} on {args.game}: {args.num_eval_episodes} episodes, epsilon {args.eval_epsilon}")
    summary = {
        "checkpoint": path,
        **play(
            args.game, policy_action, num_actions, rng,
            episodes=args.num_eval_episodes, epsilon=args.eval_epsilon, noop_max=args.eval_noop_max,
            max_episode_frames=args.eval_max_episode_frames, seed=args.seed,
            agent_history_length=args.agent_history_length,
            render_mode="human" if args.render_environment else None, video_dir=args.record_video,
        ),
    }
    print(f"mean score {summary['mean']:.2f} ± {summary['std']:.2f} (median {summary['median']:g})")
    with open(f"{path}.eval.json", "w") as file:
        json.dump(summary, file, indent=2)
    summary_dir = os.path.join(args.summary_dir, args.experiment, "eval")
    ensure_writable(summary_dir)
    writer = tf.summary.create_file_writer(summary_dir)
    T = int(tf.train.load_variable(path, "T/.ATTRIBUTES/VARIABLE_VALUE"))
    with writer.as_default():
        for index, score in enumerate(summary["scores"]):
            tf.summary.scalar("eval/episode_score", score, step=index)
        tf.summary.scalar("eval/mean_score", summary["mean"], step=T)
        tf.summary.scalar("eval/score_std", summary["std"], step=T)
    writer.close()
    return 0


def play(game, policy_action, num_actions, rng, *, episodes, epsilon, noop_max, max_episode_frames, seed,
         agent_history_length=4, render_mode=None, video_dir=None):
    """The protocol for any policy: ``episodes`` whole games of ``game``; print each score, return the summary.

    ``policy_action(state)`` is the policy's action; with probability ``epsilon``
    ``rng`` draws a uniformly random one instead. Episode i starts from the
    emulator seeded ``seed + i``. benchmarks/peers.py tests other libraries'
    agents with it, so their scores and ours come from the same games.
    """
    env = atari_wrapper.make_env(
        game, agent_history_length, noop_max=noop_max, max_episode_frames=max_episode_frames,
        render_mode=render_mode, video_dir=video_dir,
    )
    scores, noop_frames, episode_frames = [], [], []
    for episode in range(episodes):
        state, _ = env.reset(seed=seed + episode)
        score, done = 0.0, False
        while not done:
            action = epsilon_greedy(rng, epsilon, num_actions, lambda: policy_action(state))
            state, reward, terminated, truncated, _ = env.step(action)
            score += reward
            done = terminated or truncated
        scores.append(score)
        noop_frames.append(env.noop_frames)
        episode_frames.append(env.episode_frames)
        print(f"episode {episode + 1}/{episodes}: score {score:g}", flush=True)
    env.close()
    return {
        "game": game,
        "episodes": len(scores),
        "eval_epsilon": epsilon,
        "scores": scores,
        "mean": float(np.mean(scores)),
        "median": float(np.median(scores)),
        "std": float(np.std(scores)),
        "noop_frames": noop_frames,  # no-op frames that started each episode
        "episode_frames": episode_frames,  # frames played after them
    }
