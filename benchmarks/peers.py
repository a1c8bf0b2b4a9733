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
   epsilon 0.05, 18,000-frame cap), sampling the policy as our A3C does
   and as the zoo tests Atari agents.
3. Writes OUTPUT/learning.json and learning.png in learning.py's shape
   (learner ``sb3_a2c`` or ``sb3_ppo``), and with ``--results DIR`` copies
   them to DIR/<game>/sb3_<algo>_seed<N>.json and .png.

``--evaluate_only`` redoes steps 2 and 3. The minutes are the measurement:
run nothing else heavy beside it.
"""

import argparse
import functools
import glob
import json
import os
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import numpy as np  # noqa: E402

try:
    import stable_baselines3
    from stable_baselines3.common.atari_wrappers import ClipRewardEnv, EpisodicLifeEnv
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.sb2_compat.rmsprop_tf_like import RMSpropTFLike
    from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv
except ImportError:
    sys.exit("error: benchmarks/peers.py needs Stable-Baselines3: make .venv/installed-peers "
             "(or pip install -r requirements-peers.txt -c constraints.txt)")

import atari_wrapper  # noqa: E402
from async_runtime import flags  # noqa: E402
from async_runtime.evaluation import play  # noqa: E402
from learning import (  # noqa: E402
    build_report, checkpoint_number, claim_output, frames_per_step_of, read_json, still_to_test, write_report,
)

ALGORITHMS = {"a2c": stable_baselines3.A2C, "ppo": stable_baselines3.PPO}
# The zoo's n_timesteps for Atari: its linear schedules (PPO's) anneal over it, whatever the budget.
ZOO_TIMESTEPS = 10_000_000
VEC_ENVS = {"subproc": SubprocVecEnv, "dummy": DummyVecEnv}
TESTING = flags.common_parser("", default_experiment="peers")  # --testing's protocol, from its own defaults


def linear(initial):
    """The zoo's ``lin_<initial>``: falls linearly from ``initial`` to 0 over the run's total timesteps."""
    return lambda progress_remaining: progress_remaining * initial


def zoo(algo):
    """rl-baselines3-zoo's "atari" entry (hyperparams/a2c.yml at c6c209e, ppo.yml at 208b6fd): the
    number of environments and the algorithm's arguments; the rest are Stable-Baselines3's defaults."""
    if algo == "a2c":
        # RMSProp as TensorFlow computes it, epsilon 1e-5: as ours, and OpenAI Baselines' A2C.
        return 16, {
            "ent_coef": 0.01,
            "vf_coef": 0.25,
            "policy_kwargs": {"optimizer_class": RMSpropTFLike, "optimizer_kwargs": {"eps": 1e-5}},
        }
    return 8, {
        "n_steps": 128,
        "n_epochs": 4,
        "batch_size": 256,
        "learning_rate": linear(2.5e-4),
        "clip_range": linear(0.1),
        "vf_coef": 0.5,
        "ent_coef": 0.01,
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--output", required=True, help="folder for the run, its checkpoints, JSON and PNG")
    parser.add_argument("--algo", choices=sorted(ALGORITHMS), required=True, help="Stable-Baselines3's algorithm")
    parser.add_argument("--game", default="BreakoutNoFrameskip-v4", help="gymnasium id of the game")
    parser.add_argument("--seed", type=int, default=0, help="the model's and the environments' seed")
    parser.add_argument("--minutes", type=float, default=60.0, help="wall-clock budget of the training run")
    parser.add_argument("--checkpoint_minutes", type=float, default=10.0, help="minutes between checkpoints")
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
    kept = claim_output(parser, options, published, ["benchmarks/peers.py", *argv])
    if not options.evaluate_only:
        train(options, kept)
    checkpoints = sorted((path.removesuffix(".zip") for path in glob.glob(os.path.join(kept, "ckpt-*.zip"))),
                         key=checkpoint_number)
    if not checkpoints:
        sys.exit(f"error: no checkpoint in {kept}")
    for path, episodes in still_to_test(checkpoints, options):
        test(path, options, episodes)
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


class WallClock(BaseCallback):
    """Stops training at the budget, saves the model every checkpoint interval, records each finished game."""

    def __init__(self, seconds, checkpoint_seconds, kept):
        super().__init__()
        self.seconds = seconds
        self.checkpoint_seconds = checkpoint_seconds
        self.kept = kept
        self.games = {"T": [], "seconds": [], "score": []}

    def _on_training_start(self):
        self.started = time.monotonic()
        self.next_checkpoint = self.checkpoint_seconds

    def _on_step(self):
        elapsed = time.monotonic() - self.started
        for info in self.locals["infos"]:
            if "episode" in info:  # Monitor's: a whole game ended (below the lost-life terminals)
                self.games["T"].append(self.num_timesteps)
                self.games["seconds"].append(elapsed)
                self.games["score"].append(float(info["episode"]["r"]))
        if elapsed >= self.next_checkpoint:
            self.save()
            self.next_checkpoint += self.checkpoint_seconds
        return elapsed < self.seconds

    def save(self):
        self.model.save(os.path.join(self.kept, f"ckpt-{self.num_timesteps}.zip"))


def training_terminals_and_rewards(env):
    """A lost life (in a game with lives) ends a training episode, and rewards are clipped: both above
    Monitor, which records whole games and their real scores."""
    lives = isinstance(env.unwrapped, atari_wrapper.ale_py.AtariEnv)
    return ClipRewardEnv(EpisodicLifeEnv(env) if lives else env)


def train(options, kept):
    n_envs, hyperparameters = zoo(options.algo)
    # Subprocesses import atari_wrapper by name: they need the project on their path.
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [ROOT, os.environ.get("PYTHONPATH")]))
    envs = make_vec_env(
        functools.partial(atari_wrapper.make_env, options.game, TESTING.get_default("agent_history_length"),
                          noop_max=TESTING.get_default("noop_max")),
        n_envs=n_envs,
        seed=options.seed,
        vec_env_cls=VEC_ENVS[options.vec_env],
        wrapper_class=training_terminals_and_rewards,
    )
    model = ALGORITHMS[options.algo]("CnnPolicy", envs, seed=options.seed, device="cpu", **hyperparameters)
    clock = WallClock(options.minutes * 60, options.checkpoint_minutes * 60, kept)
    print(f"training {options.algo.upper()} (Stable-Baselines3 {stable_baselines3.__version__}) on {options.game}: "
          f"{n_envs} environments ({options.vec_env}), {options.minutes:g} minutes", flush=True)
    model.learn(total_timesteps=ZOO_TIMESTEPS, callback=clock)
    if not os.path.exists(os.path.join(kept, f"ckpt-{model.num_timesteps}.zip")):
        clock.save()
    envs.close()
    with open(os.path.join(options.output, "games.json"), "w") as file:
        json.dump(clock.games, file)


def test(path, options, episodes):
    """``path``.zip under --testing's protocol: ``path``.eval.json, as --testing writes for ours."""
    model = ALGORITHMS[options.algo].load(f"{path}.zip", device="cpu")
    rng = np.random.default_rng(options.seed)
    epsilon = TESTING.get_default("eval_epsilon")
    print(f"testing {path}.zip on {options.game}: {episodes} episodes, epsilon {epsilon}", flush=True)
    summary = {
        "checkpoint": f"{path}.zip",
        **play(
            options.game, lambda state: int(model.predict(state, deterministic=False)[0]),
            model.action_space.n, rng, episodes=episodes, epsilon=epsilon,
            noop_max=TESTING.get_default("eval_noop_max"),
            max_episode_frames=TESTING.get_default("eval_max_episode_frames"), seed=options.seed,
            agent_history_length=TESTING.get_default("agent_history_length"),
        ),
    }
    with open(f"{path}.eval.json", "w") as file:
        json.dump(summary, file, indent=2)


if __name__ == "__main__":
    main()
