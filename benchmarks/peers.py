"""Peers: Stable-Baselines3's A2C or PPO on an Atari game for a wall-clock budget, tested as our learners are.

    python benchmarks/peers.py --output runs/sb3_a2c_breakout --minutes 60 --algo a2c \\
        --game BreakoutNoFrameskip-v4 --seed 0 --results results

What a user would run instead of our learners, measured the way
benchmarks/learning.py measures ours, so one table and one figure hold both
(``python benchmarks/report.py``). Needs requirements-peers.txt
(``make .venv/installed-peers``).

1. Trains with rl-baselines3-zoo's Atari hyperparameters (ZOO below), on
   the frames ours train on: atari_wrapper's preprocessing, up to 30 no-op
   frames at each reset, a lost life terminal and rewards clipped to their
   sign, as the zoo's AtariWrapper does. Not its FIRE press at each reset:
   ours press FIRE themselves, and the test below presses nothing for
   anyone. Saves the model every ``--checkpoint_minutes`` and at the end
   (OUTPUT/kept/ckpt-<T>.zip, T in agent steps over all environments).
2. Tests each checkpoint with ``--testing``'s protocol and its defaults
   (async_runtime.evaluation.play: whole games, up to 30 no-op frames,
   18,000-frame cap), sampling the policy as our A3C does and as the zoo
   tests Atari agents, and at A3C's test epsilon, 0.
3. Writes OUTPUT/learning.json and learning.png in learning.py's shape
   (learner ``sb3_a2c`` or ``sb3_ppo``), and with ``--results DIR`` copies
   them to DIR/<game>/sb3_<algo>_seed<N>.json and .png.

``--evaluate_only`` redoes steps 2 and 3. The minutes are the measurement:
run nothing else heavy beside it.
"""

import argparse
import glob
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import numpy as np  # noqa: E402

import atari_wrapper  # noqa: E402
from learning import (  # noqa: E402
    build_report, checkpoint_number, claim_output, frames_per_step_of, read_json, still_to_test, write_report,
)

ALGORITHMS = ("a2c", "ppo")  # Stable-Baselines3's, trained by peer_training.py
VEC_ENVS = ("dummy", "subproc")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--output", required=True, help="folder for the run, its checkpoints, JSON and PNG")
    parser.add_argument("--algo", choices=sorted(ALGORITHMS), required=True, help="Stable-Baselines3's algorithm")
    parser.add_argument("--game", default="BreakoutNoFrameskip-v4", help="gymnasium id of the game")
    parser.add_argument("--seed", type=int, default=0, help="the model's and the environments' seed")
    parser.add_argument("--minutes", type=float, default=60.0, help="wall-clock budget of the training run")
    # 7.5: a checkpoint at each of the results tables' 15, 30 and 60 minutes (report.MINUTES)
    parser.add_argument("--checkpoint_minutes", type=float, default=7.5, help="minutes between checkpoints")
    # dummy: on 2 cores, 10% to 14% more frames/s than subproc for both algorithms (docs/peers.md)
    parser.add_argument("--vec_env", choices=sorted(VEC_ENVS), default="dummy",
                        help="environments all in this process (dummy) or each in a process of its own (subproc)")
    parser.add_argument("--eval_episodes", type=int, default=10, help="test episodes per checkpoint")
    parser.add_argument("--final_eval_episodes", type=int, default=30, help="test episodes of the last checkpoint")
    parser.add_argument("--evaluate_only", action="store_true", help="test and report an existing run in OUTPUT")
    parser.add_argument("--results", metavar="DIR",
                        help="also copy the JSON and PNG to DIR/<game>/sb3_<algo>_seed<N>.json and .png")
    argv = sys.argv[1:] if argv is None else argv
    options = parser.parse_args(argv)
    for name in ("minutes", "checkpoint_minutes", "eval_episodes", "final_eval_episodes"):
        if not getattr(options, name) > 0:
            parser.error(f"--{name} must be positive, got {getattr(options, name)}")
    try:
        atari_wrapper.check_game(options.game)
    except atari_wrapper.UnknownGameError as error:
        parser.error(str(error))
    learner = f"sb3_{options.algo}"
    published = options.results and [
        os.path.join(options.results, options.game, f"{learner}_seed{options.seed}.{extension}")
        for extension in ("json", "png")
    ]
    import peer_training  # Stable-Baselines3 and PyTorch: only once the flags are good

    kept = claim_output(parser, options, published, ["benchmarks/peers.py", *argv])
    if not options.evaluate_only:
        peer_training.train(options, kept, frames_per_step_of(options.game))
    checkpoints = sorted((path.removesuffix(".zip") for path in glob.glob(os.path.join(kept, "ckpt-*.zip"))),
                         key=checkpoint_number)
    if not checkpoints:
        sys.exit(f"error: no checkpoint in {kept}")
    for path, episodes in still_to_test(checkpoints, options, peer_training.EVAL_EPSILON):
        peer_training.test(path, options, episodes)
    games = read_json(os.path.join(options.output, "games.json"))
    report = build_report(
        options.output, checkpoints, tuple(np.asarray(games[key]) for key in ("T", "seconds", "score")),
        frames_per_step_of(options.game), game=options.game, script=f"stable-baselines3 {options.algo.upper()}",
        learner=learner, seed=options.seed, recipe=" ".join(recipe_flags(argv)), minutes_budget=options.minutes,
    )
    write_report(report, options.output, published)


def recipe_flags(argv):
    """The flags that change what is trained: --game and --seed (which the tables read), --vec_env."""
    kept, names = [], {"--game", "--seed", "--vec_env"}
    for flag, value in zip(argv, [*argv[1:], None]):
        if flag in names:
            kept += [flag, value]
        elif flag.split("=", 1)[0] in names:
            kept.append(flag)
    return kept


if __name__ == "__main__":
    main()
