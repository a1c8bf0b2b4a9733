"""The flags all learners take, with the seed's names and defaults, validated up front."""

import argparse
import importlib.util
import math
import os
import tempfile

import atari_wrapper
from async_runtime import machine
from async_runtime.errors import UsageError


class _DefaultsHelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows each flag's default, except where there is none to show (the help says what happens instead)."""

    def _get_help_string(self, action):
        if action.default is None:
            return action.help
        return super()._get_help_string(action)


def common_parser(description, default_experiment, value_based=True):
    """The flags all learners take, with the seed's names and defaults.

    ``value_based``: add the Q learners' target network and epsilon-greedy
    exploration flags (A3C has neither).
    """
    parser = argparse.ArgumentParser(
        description=description,
        formatter_class=_DefaultsHelpFormatter,
    )
    add = parser.add_argument
    add("--experiment", default=default_experiment, help="name of the run: its summary and checkpoint folder")
    add("--game", default="SpaceInvadersNoFrameskip-v4", help="gymnasium id of the game, e.g. BreakoutNoFrameskip-v4")
    add(
        "--num_actor_threads",
        type=int,
        help="actor-learner threads, each with its own emulator; counted over all --num_processes. Default: "
        f"the usable cores, at least {machine.MIN_ACTOR_LEARNERS}; with --num_processes alone, the same for that count",
    )
    add(
        "--num_processes",
        type=int,
        help="processes the actor-learner threads are spread over, all updating one theta in shared memory: "
        "more than one gets past Python's GIL. Default: one per usable core; with --num_actor_threads alone, 1",
    )
    add(
        "--ray_address",
        help="address of a running Ray cluster (host:port, or auto): the --num_processes processes beyond this "
        "one run there as Ray actors, each on a replica of theta exchanged every --ray_sync_interval",
    )
    add(
        "--ray_sync_interval",
        type=float,
        default=1.0,
        help="seconds between exchanges of theta with each Ray actor: the most its view of the others lags",
    )
    add(
        "--ray_max_restarts",
        type=int,
        default=10,
        help="Ray actors the run may start in place of lost ones (a process or machine gone); "
        "one more loss stops the run, saved",
    )
    add("--T_max", type=int, default=20_000_000, help="agent steps over all threads before training stops")
    add("--learning_rate", type=float, default=1e-4, help="initial RMSProp learning rate")
    add(
        "--anneal_learning_rate",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="anneal the learning rate linearly to 0 at T_max",
    )
    add("--decay_rate_RMSProp", type=float, default=0.99, help="RMSProp decay of the shared squared-gradient mean")
    # 1e-5: at the seed's 0.1, A3C barely learned Breakout in an hour and n-step Q learned slower (docs/plan.md)
    add("--epsilon_RMSProp", type=float, default=1e-5, help="RMSProp epsilon, added under the square root")
    add("--clip_norm", type=float, default=10.0, help="clip each gradient to this global norm")
    add("--gamma", type=float, default=0.99, help="discount factor")
    if value_based:
        add(
            "--target_network_update_frequency",
            type=int,
            default=10_000,  # the paper's 40,000 frames, read as emulator frames: 4 to a step
            help="copy the global network to the target network every this many steps of T",
        )
        add(
            "--final_epsilon_choices",
            type=float,
            nargs="+",
            default=[0.1, 0.01, 0.5],
            help="final exploration rates; each thread draws one",
        )
        add(
            "--final_epsilon_choice_probabilities",
            type=float,
            nargs="+",
            default=[0.4, 0.3, 0.3],
            help="probability of drawing each final exploration rate",
        )
        add(
            "--anneal_epsilon_timesteps",
            type=int,
            default=1_000_000,  # the paper's 4 million frames, read as emulator frames
            help="steps of T over which epsilon falls linearly from 1 to the thread's final value",
        )
    add("--agent_history_length", type=int, default=4, help="frames stacked into one state")
    add(
        "--noop_max",
        type=int,
        default=30,
        help="each training game starts with 0 to this many no-op frames, drawn at random; 0: none",
    )
    add(
        "--episodic_life",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="a lost life ends the episode for learning (no bootstrap) while the game goes on; "
        "scores are logged per game",
    )
    add(
        "--env_backend",
        choices=("auto", "gymnasium", "ale_vector"),
        default="auto",
        help="emulator path for training: ale_vector steps outside the GIL (fixed frame-skip ids only); "
        "gymnasium uses AtariWrapper; auto picks ale_vector where it can",
    )
    add("--summary_dir", default="/tmp/summaries", help="TensorBoard logs go to <summary_dir>/<experiment>")
    add("--checkpoint_dir", default="/tmp/checkpoints", help="checkpoints go to <checkpoint_dir>/<experiment>")
    add("--summary_interval", type=float, default=10.0, help="seconds between console lines and rate summaries")
    add("--checkpoint_interval", type=float, default=600.0, help="seconds between checkpoints")
    add(
        "--render_environment",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="show the game window (first thread while training; every episode when testing)",
    )
    add(
        "--testing",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="evaluate a checkpoint instead of training",
    )
    add("--checkpoint_file", default=None, help="checkpoint to evaluate; default: the experiment's latest")
    add("--num_eval_episodes", type=int, default=30, help="episodes played by --testing")
    # DQN's 0.05 keeps a greedy policy from looping; a sampled one explores already, and at 0.05
    # A3C's last Breakout checkpoint lost half its score (docs/plan.md, the test's epsilon).
    add(
        "--eval_epsilon",
        type=float,
        default=0.05 if value_based else 0.0,
        help="exploration rate while testing: 0.05 for the greedy Q learners (DQN's protocol), 0 for A3C, "
        "whose sampled policy explores already",
    )
    add(
        "--eval_noop_max",
        type=int,
        default=30,
        help="each test episode starts with 0 to this many no-op frames, drawn at random",
    )
    add(
        "--eval_max_episode_frames",
        type=int,
        default=18_000,
        help="emulator frames before a test episode is cut (18,000 = 5 minutes of play)",
    )
    add("--record_video", metavar="DIR", default=None, help="with --testing, write each episode as an MP4 to DIR")
    add("--seed", type=int, default=0, help="seed for weights, exploration and emulators")
    return parser


def parse_args(parser, argv=None):
    """Parse and validate; bad input exits with one line and status 2."""
    args = parser.parse_args(argv)
    pick_threads_and_processes(args)
    try:
        validate_args(args)
    except UsageError as error:
        parser.exit(2, f"{parser.prog}: error: {error}\n")
    return args


def pick_threads_and_processes(args):
    """Fill in --num_actor_threads and --num_processes the user left out; ``picked_for_cores`` says what was picked."""
    args.picked_for_cores = None
    if args.ray_address and args.num_processes is None:
        args.num_processes = 1  # a cluster's share is the user's to give: validate_args asks for it
    if args.num_actor_threads is None and args.num_processes is None:
        args.picked_for_cores = machine.usable_cores()
        args.num_actor_threads, args.num_processes = machine.threads_and_processes(args.picked_for_cores)
    elif args.num_actor_threads is None:
        args.num_actor_threads = machine.threads_and_processes(args.num_processes)[0]
    elif args.num_processes is None:
        args.num_processes = 1


def validate_args(args):
    positive = [
        "num_actor_threads",
        "num_processes",
        "ray_sync_interval",
        "T_max",
        "agent_history_length",
        "num_eval_episodes",
        "eval_max_episode_frames",
        "summary_interval",
        "checkpoint_interval",
        "clip_norm",
        "epsilon_RMSProp",
    ]
    learner_specific = (
        "target_network_update_frequency",
        "anneal_epsilon_timesteps",
        "num_steps_Q",
        "async_update_frequency",
        "num_steps",
        "value_loss_weight",
    )
    positive += [name for name in learner_specific if hasattr(args, name)]
    for name in positive:
        if not getattr(args, name) > 0:
            raise UsageError(f"--{name} must be positive, got {getattr(args, name)}")
    if args.num_processes > args.num_actor_threads:
        raise UsageError(
            f"--num_processes {args.num_processes} needs at least as many --num_actor_threads "
            f"(they are counted over all processes), got {args.num_actor_threads}"
        )
    if args.ray_address is not None:
        if args.num_processes < 2:
            raise UsageError(
                "--ray_address needs --num_processes 2 or more: the processes beyond this one are what run on the cluster"
            )
        if importlib.util.find_spec("ray") is None:
            raise UsageError("--ray_address needs Ray: pip install -r requirements-ray.txt")
    if not 0 < args.learning_rate <= 1:
        raise UsageError(f"--learning_rate must be in (0, 1], got {args.learning_rate}")
    if not 0 <= args.decay_rate_RMSProp < 1:
        raise UsageError(f"--decay_rate_RMSProp must be in [0, 1), got {args.decay_rate_RMSProp}")
    if not 0 < args.gamma <= 1:
        raise UsageError(f"--gamma must be in (0, 1], got {args.gamma}")
    for name in ("noop_max", "eval_noop_max", "entropy_beta", "ray_max_restarts"):
        if getattr(args, name, 0) < 0:
            raise UsageError(f"--{name} must be 0 or more, got {getattr(args, name)}")
    for value in (args.eval_epsilon, *getattr(args, "final_epsilon_choices", ())):
        if not 0 <= value <= 1:
            raise UsageError(f"exploration rates must be in [0, 1], got {value}")
    if hasattr(args, "final_epsilon_choices"):
        _validate_final_epsilons(args.final_epsilon_choices, args.final_epsilon_choice_probabilities)
    try:
        atari_wrapper.check_game(args.game)
    except atari_wrapper.UnknownGameError as error:
        raise UsageError(f"--game: {error}") from None
    if args.record_video and args.render_environment:
        raise UsageError("--record_video and --render_environment cannot be combined: pick one")
    if args.env_backend == "ale_vector" and atari_wrapper.vector_env_settings(args.game) is None:
        raise UsageError(f"--env_backend ale_vector cannot run {args.game} (random frame skip); use gymnasium")


def _validate_final_epsilons(choices, probabilities):
    if len(choices) != len(probabilities):
        raise UsageError(
            f"--final_epsilon_choices has {len(choices)} values but "
            f"--final_epsilon_choice_probabilities has {len(probabilities)}"
        )
    if min(probabilities) < 0 or not math.isclose(sum(probabilities), 1.0, abs_tol=1e-6):
        raise UsageError(
            f"--final_epsilon_choice_probabilities must be non-negative and sum to 1, got {probabilities}"
        )


def ensure_writable(path):
    """Create ``path`` if needed and refuse it now if files cannot be written there."""
    try:
        os.makedirs(path, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as error:
        raise UsageError(f"cannot write to {path}: {error.strerror}") from None
