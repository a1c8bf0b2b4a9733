"""benchmarks/peers.py's Stable-Baselines3 side: the zoo's Atari settings, training for a budget, testing a checkpoint.

Imported by peers.py once its flags are checked, so that a wrong flag costs
no PyTorch import, and the tests that check flags need no PyTorch at all.
"""

import functools
import json
import os
import sys
import time

import numpy as np

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

import atari_wrapper
from async_runtime import flags
from async_runtime.evaluation import play

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ALGORITHMS = {"a2c": stable_baselines3.A2C, "ppo": stable_baselines3.PPO}
# The zoo's n_timesteps for Atari: its linear schedules (PPO's) anneal over it, whatever the budget.
ZOO_TIMESTEPS = 10_000_000
VEC_ENVS = {"subproc": SubprocVecEnv, "dummy": DummyVecEnv}
# --testing's protocol, from its own defaults: those of A3C, which samples its policy as the peers do
TESTING = flags.common_parser("", default_experiment="peers", value_based=False)
EVAL_EPSILON = TESTING.get_default("eval_epsilon")
RECENT_GAMES = 50  # the training score of a progress line: as our scripts' lines give it


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


class WallClock(BaseCallback):
    """Stops training at the budget, saves the model every checkpoint interval, records each finished game."""

    def __init__(self, seconds, checkpoint_seconds, kept, frames_per_step):
        super().__init__()
        self.seconds = seconds
        self.checkpoint_seconds = checkpoint_seconds
        self.kept = kept
        self.frames_per_step = frames_per_step
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
        """The model as a checkpoint, and a line that says where training stands (the log's only progress)."""
        self.model.save(os.path.join(self.kept, f"ckpt-{self.num_timesteps}.zip"))
        elapsed = time.monotonic() - self.started
        recent = self.games["score"][-RECENT_GAMES:]
        score = f"{np.mean(recent):.2f} over the last {len(recent)} games" if recent else "no game yet"
        print(f"checkpoint at {elapsed / 60:.1f} min: T {self.num_timesteps:,}, "
              f"{self.num_timesteps * self.frames_per_step / elapsed:,.0f} frames/s, training score {score}", flush=True)


def training_terminals_and_rewards(env):
    """A lost life (in a game with lives) ends a training episode, and rewards are clipped: both above
    Monitor, which records whole games and their real scores."""
    lives = isinstance(env.unwrapped, atari_wrapper.ale_py.AtariEnv)
    return ClipRewardEnv(EpisodicLifeEnv(env) if lives else env)


def train(options, kept, frames_per_step):
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
    clock = WallClock(options.minutes * 60, options.checkpoint_minutes * 60, kept, frames_per_step)
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
    print(f"testing {path}.zip on {options.game}: {episodes} episodes, epsilon {EVAL_EPSILON}", flush=True)
    summary = {
        "checkpoint": f"{path}.zip",
        **play(
            options.game, lambda state: int(model.predict(state, deterministic=False)[0]),
            model.action_space.n, rng, episodes=episodes, epsilon=EVAL_EPSILON,
            noop_max=TESTING.get_default("eval_noop_max"),
            max_episode_frames=TESTING.get_default("eval_max_episode_frames"), seed=options.seed,
            agent_history_length=TESTING.get_default("agent_history_length"),
        ),
    }
    with open(f"{path}.eval.json", "w") as file:
        json.dump(summary, file, indent=2)
