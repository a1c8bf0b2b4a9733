"""The plumbing both asynchronous Q-learners share.

``async_q_1step.py`` and ``async_q_nstep.py`` each hold their algorithm: the
actor-learner loop and its targets. Everything around it lives here, once:

* flags common to both scripts, validated up front (``common_parser``);
* the schedules of the paper: epsilon, learning rate, target-sync boundary;
* the shared state: global and target parameters, shared RMSProp, the global
  step counter T (``SharedState``), and one ``ActorLearner`` per thread with
  its own environment, local parameters theta' and final epsilon;
* the compiled TensorFlow work, one ``tf.function`` per kind of call;
* the driver: threads, TensorBoard, checkpoints, resume, signals, failures;
* evaluation for ``--testing``.

Threads, not processes: TensorFlow ops, ale-py's vector env and the shared
RMSProp step release the GIL, so threads overlap where the time is spent,
and share the global network without copies, as the paper's actor-learners do.
"""

import argparse
import dataclasses
import json
import math
import os
import queue
import signal
import sys
import tempfile
import threading
import time
import traceback

import numba
import numpy as np
import threadpoolctl
import tqdm

# Hide TensorFlow's C++ info and warning logs (a few start-up lines print regardless).
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow as tf  # noqa: E402

import atari_wrapper  # noqa: E402
from build_model import HIDDEN_UNITS, build_network, q_values_numpy  # noqa: E402

RECENT_EPISODES = 50  # episodes in the console's and summaries' recent mean score
CHECKPOINTS_KEPT = 5


class UsageError(Exception):
    """Bad input from the user: reported as one line, exit status 2."""


class CheckpointMismatch(UsageError):
    """A checkpoint that loads but was made for a game with another number of actions."""


# ---------------------------------------------------------------------------
# Flags
# ---------------------------------------------------------------------------


def common_parser(description, default_experiment):
    """The flags both learners take, with the seed's names and defaults."""
    parser = argparse.ArgumentParser(
        description=description,
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    add = parser.add_argument
    add("--experiment", default=default_experiment, help="name of the run: its summary and checkpoint folder")
    add("--game", default="SpaceInvadersNoFrameskip-v4", help="gymnasium id of the game, e.g. BreakoutNoFrameskip-v4")
    add("--num_actor_threads", type=int, default=16, help="actor-learner threads, each with its own emulator")
    add("--T_max", type=int, default=20_000_000, help="agent steps over all threads before training stops")
    add("--learning_rate", type=float, default=1e-4, help="initial RMSProp learning rate")
    add(
        "--anneal_learning_rate",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="anneal the learning rate linearly to 0 at T_max",
    )
    add("--decay_rate_RMSProp", type=float, default=0.99, help="RMSProp decay of the shared squared-gradient mean")
    add("--epsilon_RMSProp", type=float, default=0.1, help="RMSProp epsilon, added under the square root")
    add("--clip_norm", type=float, default=10.0, help="clip each gradient to this global norm")
    add("--gamma", type=float, default=0.99, help="discount factor")
    add(
        "--target_network_update_frequency",
        type=int,
        default=40_000,
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
        default=4_000_000,
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
    add("--eval_epsilon", type=float, default=0.05, help="exploration rate while testing")
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
    try:
        validate_args(args)
    except UsageError as error:
        parser.exit(2, f"{parser.prog}: error: {error}\n")
    return args


def validate_args(args):
    positive = [
        "num_actor_threads",
        "T_max",
        "target_network_update_frequency",
        "anneal_epsilon_timesteps",
        "agent_history_length",
        "num_eval_episodes",
        "eval_max_episode_frames",
        "summary_interval",
        "checkpoint_interval",
        "clip_norm",
        "epsilon_RMSProp",
    ]
    positive += [name for name in ("num_steps_Q", "async_update_frequency") if hasattr(args, name)]
    for name in positive:
        if not getattr(args, name) > 0:
            raise UsageError(f"--{name} must be positive, got {getattr(args, name)}")
    if not 0 < args.learning_rate <= 1:
        raise UsageError(f"--learning_rate must be in (0, 1], got {args.learning_rate}")
    if not 0 <= args.decay_rate_RMSProp < 1:
        raise UsageError(f"--decay_rate_RMSProp must be in [0, 1), got {args.decay_rate_RMSProp}")
    if not 0 < args.gamma <= 1:
        raise UsageError(f"--gamma must be in (0, 1], got {args.gamma}")
    for name in ("noop_max", "eval_noop_max"):
        if getattr(args, name) < 0:
            raise UsageError(f"--{name} must be 0 or more, got {getattr(args, name)}")
    for value in (args.eval_epsilon, *args.final_epsilon_choices):
        if not 0 <= value <= 1:
            raise UsageError(f"exploration rates must be in [0, 1], got {value}")
    choices, probabilities = args.final_epsilon_choices, args.final_epsilon_choice_probabilities
    if len(choices) != len(probabilities):
        raise UsageError(
            f"--final_epsilon_choices has {len(choices)} values but "
            f"--final_epsilon_choice_probabilities has {len(probabilities)}"
        )
    if min(probabilities) < 0 or not math.isclose(sum(probabilities), 1.0, abs_tol=1e-6):
        raise UsageError(
            f"--final_epsilon_choice_probabilities must be non-negative and sum to 1, got {probabilities}"
        )
    try:
        atari_wrapper.check_game(args.game)
    except atari_wrapper.UnknownGameError as error:
        raise UsageError(f"--game: {error}") from None
    if args.record_video and args.render_environment:
        raise UsageError("--record_video and --render_environment cannot be combined: pick one")
    if args.env_backend == "ale_vector" and atari_wrapper.vector_env_settings(args.game) is None:
        raise UsageError(f"--env_backend ale_vector cannot run {args.game} (random frame skip); use gymnasium")


# ---------------------------------------------------------------------------
# Schedules (units: agent steps of T, summed over all threads)
# ---------------------------------------------------------------------------


def epsilon_at(T, final_epsilon, anneal_steps):
    """Falls linearly from 1 at T = 0 to final_epsilon at T = anneal_steps, then stays."""
    progress = min(T / anneal_steps, 1.0)
    return 1.0 + progress * (final_epsilon - 1.0)


def learning_rate_at(T, args):
    if not args.anneal_learning_rate:
        return args.learning_rate
    return args.learning_rate * max(0.0, 1.0 - T / args.T_max)


def draw_final_epsilon(rng, choices, probabilities):
    return float(rng.choice(choices, p=probabilities))


def crossed(old_T, new_T, interval):
    """True when T went past a multiple of interval between old_T and new_T."""
    return old_T // interval != new_T // interval


# ---------------------------------------------------------------------------
# Shared state: global network theta, target theta-minus, RMSProp, T
# ---------------------------------------------------------------------------


class SharedRMSProp:
    """RMSProp with one set of statistics for all threads (the paper's shared RMSProp).

        g     <- decay * g + (1 - decay) * grad ** 2
        theta <- theta - learning_rate * grad / sqrt(g + epsilon)

    theta and g are NumPy arrays that the threads update at the same time,
    in place and without locks, as the paper's actor-learners do. The step
    is a compiled loop that releases the GIL; TensorFlow's own update
    kernels lock each variable for the whole update, which kept two threads'
    updates from overlapping (README, performance).
    """

    def __init__(self, parameters, decay, epsilon):
        self.parameters = parameters
        self.decay = decay
        self.epsilon = epsilon
        self.mean_squares = [np.zeros_like(value) for value in parameters]
        self._flat_parameters = flat_views(parameters)
        self._flat_mean_squares = flat_views(self.mean_squares)

    def apply(self, gradients, clip_factor, learning_rate, theta_copy):
        """theta <- RMSProp(theta, clip_factor * gradients); theta_copy <- the new theta, in the same pass."""
        _rmsprop_step(
            self._flat_parameters,
            self._flat_mean_squares,
            flat_views(np.asarray(gradient) for gradient in gradients),
            flat_views(theta_copy),
            clip_factor,
            learning_rate,
            self.decay,
            self.epsilon,
        )


def flat_views(arrays):
    """1-D views of C-contiguous arrays; anything else would be a copy, and writes to it lost."""
    views = []
    for array in arrays:
        if not array.flags.c_contiguous:
            raise ValueError(f"expected a C-contiguous array, got strides {array.strides}")
        views.append(array.reshape(-1))
    return tuple(views)


# One call for all layers: each call out of Python lets the other threads take
# the GIL, and winning it back can mean waiting for one of them.
@numba.njit(nogil=True, error_model="numpy")
def _rmsprop_step(thetas, mean_squares, gradients, theta_copies, clip_factor, learning_rate, decay, epsilon):
    """SharedRMSProp's step on tuples of flat float32 arrays: one pass over memory, the clip applied on the way."""
    # float32 throughout, as TensorFlow's kernel computes: the loops vectorise.
    clip_factor, learning_rate = np.float32(clip_factor), np.float32(learning_rate)
    decay, epsilon = np.float32(decay), np.float32(epsilon)
    new_weight = np.float32(1.0) - decay
    for layer in range(len(thetas)):
        theta, mean_square = thetas[layer], mean_squares[layer]
        gradient, theta_copy = gradients[layer], theta_copies[layer]
        for i in range(theta.size):
            grad = gradient[i] * clip_factor
            g = decay * mean_square[i] + new_weight * grad * grad
            mean_square[i] = g
            value = theta[i] - learning_rate * grad / np.sqrt(g + epsilon)
            theta[i] = value
            theta_copy[i] = value


class Parameters:
    """A network's parameters as NumPy arrays and, on the same memory, tensors.

    A thread's theta' thus serves NumPy acting and the gradient call alike,
    and what the update writes into it is what the next call reads. Only
    its own thread writes a theta', between its own calls.
    """

    def __init__(self, values):
        self.arrays = [aligned_zeros(np.shape(value)) for value in values]
        self.assign(values)
        self.tensors = [tensor_view(array) for array in self.arrays]

    def assign(self, values):
        for array, value in zip(self.arrays, values):
            np.copyto(array, value)


TENSORFLOW_ALIGNMENT = 64  # bytes, as TensorFlow's own allocator aligns tensors


def aligned_zeros(shape, dtype=np.float32):
    """Zeros in memory aligned as TensorFlow's kernels expect, for tensor_view."""
    dtype = np.dtype(dtype)
    nbytes = math.prod(shape) * dtype.itemsize
    buffer = np.zeros(nbytes + TENSORFLOW_ALIGNMENT, np.uint8)
    start = -buffer.ctypes.data % TENSORFLOW_ALIGNMENT
    return buffer[start : start + nbytes].view(dtype).reshape(shape)


def tensor_view(array):
    """A tensor on the memory of an aligned array: DLPack lends it to TensorFlow without a copy.

    TensorFlow takes tensors to be immutable: write the array only while no
    call that was given the tensor is running.
    """
    return tf.experimental.dlpack.from_dlpack(array.__dlpack__())


def all_finite(arrays):
    return all(np.isfinite(array).all() for array in arrays)


class StepCounter:
    """The global step counter T, counted under a lock so no thread's steps are lost."""

    def __init__(self, start=0):
        self._value = start
        self._lock = threading.Lock()

    @property
    def value(self):
        return self._value

    def add(self, steps):
        """Add steps; return (T before, T after) so callers can spot crossed boundaries."""
        with self._lock:
            old = self._value
            self._value += steps
            return old, self._value


class SharedState:
    """What all actor-learners share: theta, theta-minus, RMSProp statistics, T.

    theta and its statistics are NumPy arrays (SharedRMSProp); ``network``
    gives them their structure. TensorFlow runs it on explicit parameters
    only (a thread's theta', or theta-minus), never on its own variables,
    which just seed theta; checkpoints store the arrays (Checkpoints).
    """

    def __init__(self, args, num_actions):
        self.args = args
        self.num_actions = num_actions
        self.network = build_network(num_actions, args.agent_history_length)
        self.theta = [value.numpy() for value in self.network.trainable_variables]
        self.optimizer = SharedRMSProp(self.theta, args.decay_rate_RMSProp, args.epsilon_RMSProp)
        self.ops = CompiledOps(self.network, args.clip_norm)
        self.T = StepCounter()
        self.stop_event = threading.Event()
        self.episodes = queue.SimpleQueue()  # EpisodeRecord, from the threads to the driver
        self.update_target()

    def update_target(self):
        """theta-minus <- theta.

        A new snapshot rather than a copy in place: a thread that is
        bootstrapping from the old one reads it whole.
        """
        self.target = Parameters(self.theta)

    def should_stop(self):
        return self.stop_event.is_set() or self.T.value >= self.args.T_max

    def learning_rate(self):
        return learning_rate_at(self.T.value, self.args)


class CompiledOps:
    """The TensorFlow work of the hot loop, traced once and shared by all threads.

    Parameters are passed in, not closed over: the network's ``stateless_call``
    runs it on any thread's theta' or on theta-minus, so each function is
    traced once for all threads. Batches have fixed sizes (shorter segments
    are padded with rows that select no action), so nothing is traced again.
    """

    def __init__(self, network, clip_norm):
        @tf.function(jit_compile=True)
        def max_q(params, states):
            """max_a Q(s, a; params) for each state."""
            return tf.reduce_max(network.stateless_call(params, [], states)[0], axis=1)

        # Not XLA-compiled: XLA's CPU convolution gradients took 3.1 ms here
        # against 1.8 ms for TensorFlow's own kernels (5 states).
        @tf.function
        def gradient(params, states, taken, targets):
            """The gradient of the summed squared TD error at theta', and the factor that clips it.

            ``taken`` is one-hot: row i selects Q(s_i, a_i), and the all-zero
            rows of padding select nothing. Returns the summed squared TD
            error, the gradients, and min(1, clip_norm / their global norm):
            the update scales by it as it passes over them anyway.
            """
            with tf.GradientTape() as tape:
                tape.watch(params)
                q = network.stateless_call(params, [], states)[0]
                loss = tf.reduce_sum(taken * tf.square(targets[:, None] - q))
            gradients = tape.gradient(loss, params)
            return loss, gradients, tf.minimum(1.0, clip_norm / tf.linalg.global_norm(gradients))

        self.max_q = max_q
        self.gradient = gradient


@dataclasses.dataclass
class EpisodeRecord:
    thread: int
    T: int
    score: float  # unclipped game score
    length: int  # agent steps
    mean_max_q: float
    epsilon: float


class ActorLearner:
    """One actor-learner thread's own things: emulator, theta', final epsilon, buffers.

    The algorithm scripts drive it; it keeps the bookkeeping out of their way.
    """

    def __init__(self, index, shared, batch_size, render=False):
        args = shared.args
        self.index = index
        self.shared = shared
        self.ops = shared.ops
        self.rng = np.random.default_rng([args.seed, index])
        self.final_epsilon = draw_final_epsilon(
            self.rng, args.final_epsilon_choices, args.final_epsilon_choice_probabilities
        )
        self.episodic_life = args.episodic_life
        self.env = make_training_env(args, render=render)
        self.frames_per_step = atari_wrapper.frames_per_step(self.env)
        self.local = Parameters(shared.theta)  # theta'
        # Fixed-size batch buffers: one compiled shape whatever the segment length.
        history = args.agent_history_length
        self.batch_size = batch_size
        self.states = aligned_zeros((batch_size, 84, 84, history), np.uint8)
        self.taken = aligned_zeros((batch_size, shared.num_actions))  # one-hot actions
        self.targets = aligned_zeros((batch_size,))
        self.next_states = aligned_zeros(self.states.shape, np.uint8)
        # The same buffers as tensors: filled in place, passed without a copy.
        self.batch = [tensor_view(array) for array in (self.states, self.taken, self.targets)]
        self.next_states_tensor = tensor_view(self.next_states)
        # The traced graphs themselves, called on flat lists of tensors: that
        # skips a tf.function call's binding and checking of its arguments
        # (always the same tensors here), about 0.3 ms of the GIL per update.
        self.gradient_graph = self.ops.gradient.get_concrete_function(self.local.tensors, *self.batch).inference_fn
        self.max_q_graph = self.ops.max_q.get_concrete_function(
            shared.target.tensors, self.next_states_tensor
        ).inference_fn
        self.loss_sum = 0.0  # written by this thread only; the driver reads differences
        self.loss_count = 0
        self._episode_seed = args.seed * 1000 + index
        self._score, self._length, self._max_q_sum = 0.0, 0, 0.0  # the running game's
        self._state, self._lives, self._game_over = None, 0, True

    # -- acting ---------------------------------------------------------------

    def epsilon(self):
        return epsilon_at(self.shared.T.value, self.final_epsilon, self.shared.args.anneal_epsilon_timesteps)

    def act(self, state):
        """Epsilon-greedy action under theta'."""
        q = q_values_numpy(self.local.arrays, state)
        self._max_q_sum += float(q.max())
        if self.rng.random() < self.epsilon():
            return int(self.rng.integers(self.shared.num_actions))
        return int(q.argmax())

    def reset(self):
        """Start the next episode: a new game, or after a lost life (--episodic_life) the same game going on."""
        if not self._game_over:
            return self._state
        seed, self._episode_seed = self._episode_seed, None  # seed the first game only
        self._state, info = self.env.reset(seed=seed)
        self._lives, self._game_over = info.get("lives", 0), False
        self._score, self._length, self._max_q_sum = 0.0, 0, 0.0
        return self._state

    def step(self, action):
        """Step the emulator: (next state, reward, terminated, truncated), as the learner sees them.

        terminated: the game is over or, with --episodic_life, a life was
        lost; no bootstrap either way. truncated: the time limit cut the game
        (it bootstraps). The score, length and mean max-Q reported to the
        logs are the whole game's, over all its lives.
        """
        state, reward, game_over, truncated, info = self.env.step(action)
        lives = info.get("lives", 0)
        life_lost, self._lives = lives < self._lives, lives
        self._state, self._game_over = state, game_over or truncated
        self._score += reward
        self._length += 1
        if self._game_over:
            self.shared.episodes.put(
                EpisodeRecord(
                    self.index,
                    self.shared.T.value,
                    self._score,
                    self._length,
                    self._max_q_sum / self._length,
                    self.epsilon(),
                )
            )
        terminated = game_over or (self.episodic_life and life_lost)
        return state, reward, terminated, truncated

    # -- learning -------------------------------------------------------------

    def sync_local(self):
        """theta' <- theta."""
        self.local.assign(self.shared.theta)

    def max_target_q(self, states):
        """max_a Q(s, a; theta-minus) per state; batches are padded to one compiled size."""
        target = self.shared.target  # one snapshot, even if the target moves meanwhile
        count = len(states)
        if count == 1:  # the n-step bootstrap: NumPy, as for acting
            return q_values_numpy(target.arrays, states[0]).max(keepdims=True)
        self.next_states[:count] = states
        (max_q,) = self.max_q_graph.call_flat(*target.tensors, self.next_states_tensor)
        return max_q.numpy()[:count]

    def apply_gradient_and_sync(self, states, actions, targets):
        """Gradient of the summed squared TD error on theta', clipped, applied to theta; then theta' <- theta.

        The algorithm syncs right after each update (the next segment's
        first step): the update writes theta' as it writes theta.
        """
        count = len(actions)
        self.states[:count] = states
        self.taken[:] = 0.0
        self.taken[np.arange(count), actions] = 1.0
        self.targets[:count] = targets
        loss, *gradients, clip_factor = self.gradient_graph.call_flat(*self.local.tensors, *self.batch)
        self.shared.optimizer.apply(gradients, float(clip_factor), self.shared.learning_rate(), self.local.arrays)
        self.loss_sum += float(loss)
        self.loss_count += count


def make_training_env(args, render=False):
    use_vector = args.env_backend == "ale_vector" or (
        args.env_backend == "auto" and not render and atari_wrapper.vector_env_settings(args.game) is not None
    )
    if use_vector:
        return atari_wrapper.VectorAtariEnv(args.game, args.agent_history_length, noop_max=args.noop_max)
    return atari_wrapper.make_env(
        args.game, args.agent_history_length, noop_max=args.noop_max, render_mode="human" if render else None
    )


def clip_reward(reward):
    """Rewards are clipped to [-1, 1] for learning; scores stay unclipped."""
    return max(-1.0, min(1.0, reward))


# ---------------------------------------------------------------------------
# Driver
# ---------------------------------------------------------------------------


def main(args, actor_learner, batch_size):
    """Run ``--testing`` or training; return the process exit status."""
    configure_threads(args.seed, actor_threads=1 if args.testing else args.num_actor_threads)
    try:
        if args.testing:
            return evaluate(args)
        return train(args, actor_learner, batch_size)
    except UsageError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


def configure_threads(seed, actor_threads):
    """Size the libraries' thread pools for ``actor_threads`` streams of work; seed TensorFlow.

    Each kernel and each matrix product runs on one thread: the actor-learner
    threads are already the parallel streams of work. OpenBLAS's worker
    threads (NumPy's products when acting) spin while they wait: with them,
    one actor-learner thread kept 1.8 cores busy; without, 1.0.

    A gradient call's kernels run on TensorFlow's inter-op pool. With as many
    threads as cores, a single pool thread makes their calls queue behind
    each other, so each gets a pool thread; with more threads than cores, the
    threads keep the cores busy and more pool threads only compete with them.
    n-step on 2 cores, 2 pool threads against 1: 2 actor-learner threads
    ~4,300 -> ~4,500 frames/s, 4 threads ~5,000 -> ~4,400.
    TensorFlow fixes the pool sizes at its first operation: call this first.
    """
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(actor_threads if actor_threads <= cores else 1)
    threadpoolctl.threadpool_limits(1, user_api="blas")
    tf.keras.utils.set_random_seed(seed)


def run_dirs(args):
    summary = os.path.join(args.summary_dir, args.experiment)
    checkpoints = os.path.join(args.checkpoint_dir, args.experiment)
    for path in (summary, checkpoints):
        ensure_writable(path)
    return summary, checkpoints


def ensure_writable(path):
    try:
        os.makedirs(path, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as error:
        raise UsageError(f"cannot write to {path}: {error.strerror}") from None


class Checkpoints:
    """Global and target networks, RMSProp statistics and T, under <checkpoint_dir>/<experiment>.

    The checkpoint holds them as TensorFlow variables (the global network's
    are what ``--testing`` loads); the arrays the threads update are copied
    in to save and out after a restore.

    TensorFlow writes a checkpoint's files first and only then points the
    ``checkpoint`` index at them, atomically: a run killed mid-write leaves the
    previous checkpoint as the latest.
    """

    def __init__(self, shared, directory):
        self.shared = shared
        history = shared.args.agent_history_length
        self.global_network = build_network(shared.num_actions, history)
        self.target_network = build_network(shared.num_actions, history)
        self.rmsprop = tf.Module()
        self.rmsprop.mean_squares = [tf.Variable(value, trainable=False) for value in shared.optimizer.mean_squares]
        self.T = tf.Variable(0, dtype=tf.int64, trainable=False)
        self.checkpoint = tf.train.Checkpoint(
            global_network=self.global_network,
            target_network=self.target_network,
            optimizer=self.rmsprop,
            T=self.T,
        )
        self.manager = tf.train.CheckpointManager(self.checkpoint, directory, max_to_keep=CHECKPOINTS_KEPT)

    def restore_latest(self):
        """Restore the newest checkpoint that loads; return its path, or None if there is none.

        Call it before the threads start: it writes theta in place.
        """
        for path in reversed(self.manager.checkpoints):
            try:
                restore(self.checkpoint, path, self.shared.num_actions)
            except CheckpointMismatch:
                raise
            except UsageError as error:  # unreadable, e.g. cut short by a crash: try the one before
                print(f"warning: skipping {path}: {error}", file=sys.stderr)
                continue
            shared = self.shared
            for array, variable in zip(shared.theta, self.global_network.trainable_variables):
                np.copyto(array, variable.numpy())
            for array, variable in zip(shared.optimizer.mean_squares, self.rmsprop.mean_squares):
                np.copyto(array, variable.numpy())
            shared.target = Parameters([variable.numpy() for variable in self.target_network.trainable_variables])
            shared.T = StepCounter(int(self.T.numpy()))
            return path
        if self.manager.checkpoints:
            raise UsageError(f"no checkpoint in {self.manager.directory} loads")
        return None

    def save(self):
        """Save if every weight is finite; return the path, or None if not saved.

        The threads may be updating theta meanwhile: what is checked is
        what is saved, a copy taken first.
        """
        shared = self.shared
        theta = [array.copy() for array in shared.theta]
        if not all_finite(theta):
            return None
        for variables, values in (
            (self.global_network.trainable_variables, theta),
            (self.target_network.trainable_variables, shared.target.arrays),
            (self.rmsprop.mean_squares, shared.optimizer.mean_squares),
        ):
            for variable, value in zip(variables, values):
                variable.assign(value)
        T = shared.T.value
        self.T.assign(T)
        return self.manager.save(checkpoint_number=T)


def restore(checkpoint, path, num_actions):
    """Restore ``path`` into ``checkpoint``, refusing files that are missing, corrupt or for another game."""
    try:
        saved_shapes = dict(tf.train.list_variables(path))
    except (tf.errors.OpError, ValueError) as error:
        raise UsageError(f"cannot read checkpoint {path}: {error.__class__.__name__}") from None
    # The output layer's kernel is the only (hidden units, actions) matrix.
    output_kernels = [
        shape
        for name, shape in saved_shapes.items()
        if name.startswith("global_network/") and len(shape) == 2 and shape[0] == HIDDEN_UNITS
    ]
    if output_kernels and output_kernels[0][1] != num_actions:
        raise CheckpointMismatch(
            f"checkpoint {path} was made for a game with {output_kernels[0][1]} actions; this game has {num_actions}"
        )
    try:
        checkpoint.restore(path).expect_partial()
    except (tf.errors.OpError, ValueError, AssertionError) as error:
        raise UsageError(f"cannot load checkpoint {path}: {error.__class__.__name__}") from None


def num_actions_of(args):
    env = atari_wrapper.make_env(args.game, args.agent_history_length)
    count = int(env.action_space.n)
    env.close()
    return count


def train(args, actor_learner, batch_size):
    summary_dir, checkpoint_dir = run_dirs(args)
    shared = SharedState(args, num_actions_of(args))
    workers = [
        ActorLearner(i, shared, batch_size, render=args.render_environment and i == 0)
        for i in range(args.num_actor_threads)
    ]
    warm_up(workers[0])
    checkpoints = Checkpoints(shared, checkpoint_dir)
    resumed_from = checkpoints.restore_latest()
    if resumed_from:
        print(f"resuming {args.experiment} from {resumed_from} at T = {shared.T.value:,}")
    writer = tf.summary.create_file_writer(summary_dir)
    with writer.as_default():
        tf.summary.text("hyperparameters", hyperparameter_table(args), step=shared.T.value)
    print(
        f"training {args.experiment}: {args.game}, {args.num_actor_threads} actor-learner threads, "
        f"T_max {args.T_max:,}; TensorBoard: tensorboard --logdir {summary_dir}"
    )
    driver = Driver(args, shared, workers, checkpoints, writer)
    return driver.run(actor_learner)


def warm_up(worker):
    """Trace and compile every function once, before threads start and clocks run.

    Runs before a checkpoint is restored: an empty segment's gradient is zero,
    which leaves theta and the still-zero RMSProp statistics as they are.
    """
    worker.sync_local()
    worker.max_target_q(worker.next_states)
    worker.apply_gradient_and_sync(worker.states[:0], [], worker.targets[:0])


def hyperparameter_table(args):
    rows = "\n".join(f"|{key}|{value}|" for key, value in sorted(vars(args).items()))
    return f"|flag|value|\n|-|-|\n{rows}"


DIVERGED = "training diverged: {what}; the last good checkpoint is kept (try a smaller --learning_rate)"


class Driver:
    """Starts the threads, then logs, checkpoints and watches them until they stop."""

    def __init__(self, args, shared, workers, checkpoints, writer):
        self.args = args
        self.shared = shared
        self.workers = workers
        self.checkpoints = checkpoints
        self.writer = writer
        self.progress = Progress(shared.T.value, args.T_max, live=sys.stdout.isatty())
        self.failure = None  # (thread index or None, message) of the first failure
        self.signal_received = None
        self.recent_scores = []

    def run(self, actor_learner):
        self._install_signal_handlers()
        threads = [
            threading.Thread(target=self._guard, args=(actor_learner, worker), name=f"actor-learner-{worker.index}")
            for worker in self.workers
        ]
        for thread in threads:
            thread.start()
        last_summary = last_checkpoint = time.monotonic()
        last_T, last_losses = self.shared.T.value, self._losses()
        while any(thread.is_alive() for thread in threads):
            self.shared.stop_event.wait(0.5)
            self._write_episodes()
            self.progress.tick(self.shared.T.value)
            now = time.monotonic()
            if now - last_summary >= self.args.summary_interval:
                last_T, last_losses = self._write_rates(now - last_summary, last_T, last_losses)
                last_summary = now
            if now - last_checkpoint >= self.args.checkpoint_interval:
                self._save()
                last_checkpoint = now
            if self.shared.stop_event.is_set():
                for thread in threads:
                    thread.join()
        self._write_episodes()
        return self._finish()

    def _guard(self, actor_learner, worker):
        """Run one thread's loop; any failure stops the whole run."""
        try:
            actor_learner(worker, self.shared, self.args)
        except BaseException:  # noqa: BLE001  whatever it is, the other threads must stop too
            self._fail(worker.index, traceback.format_exc())

    def _fail(self, thread, message):
        if self.failure is None:
            self.failure = (thread, message)
        self.shared.stop_event.set()

    def _install_signal_handlers(self):
        def stop(signum, _frame):
            if self.signal_received is not None:
                os._exit(128 + signum)  # a second signal: leave at once
            self.signal_received = signum
            self.progress.write(
                f"{signal.Signals(signum).name}: stopping the threads and saving a checkpoint "
                "(Ctrl-C again quits at once)"
            )
            self.shared.stop_event.set()

        signal.signal(signal.SIGINT, stop)
        signal.signal(signal.SIGTERM, stop)

    def _write_episodes(self):
        with self.writer.as_default():
            while True:
                try:
                    episode = self.shared.episodes.get_nowait()
                except queue.Empty:
                    break
                tf.summary.scalar("episode/score", episode.score, step=episode.T)
                tf.summary.scalar("episode/length", episode.length, step=episode.T)
                tf.summary.scalar("episode/mean_max_q", episode.mean_max_q, step=episode.T)
                tf.summary.scalar("episode/epsilon", episode.epsilon, step=episode.T)
                self.recent_scores = [*self.recent_scores[-(RECENT_EPISODES - 1):], episode.score]

    def _losses(self):
        return (sum(w.loss_sum for w in self.workers), sum(w.loss_count for w in self.workers))

    def _write_rates(self, seconds, last_T, last_losses):
        T = self.shared.T.value
        frames_per_second = (T - last_T) * self.workers[0].frames_per_step / seconds
        loss_sum, loss_count = self._losses()
        new_states = loss_count - last_losses[1]
        td_loss = (loss_sum - last_losses[0]) / new_states if new_states else None
        if td_loss is not None and not math.isfinite(td_loss):
            self._fail(None, DIVERGED.format(what=f"the TD loss is {td_loss}"))
        elif not all_finite(self.shared.theta):
            self._fail(None, DIVERGED.format(what="a weight is NaN or infinite"))
        recent_score = float(np.mean(self.recent_scores)) if self.recent_scores else None
        with self.writer.as_default():
            tf.summary.scalar("charts/frames_per_second", frames_per_second, step=T)
            tf.summary.scalar("charts/learning_rate", self.shared.learning_rate(), step=T)
            if td_loss is not None:
                tf.summary.scalar("losses/td_loss", td_loss, step=T)
            if recent_score is not None:
                tf.summary.scalar("charts/recent_mean_score", recent_score, step=T)
        self.writer.flush()
        self.progress.report(T, frames_per_second, recent_score, len(self.recent_scores))
        return T, (loss_sum, loss_count)

    def _save(self):
        path = self.checkpoints.save()
        if path is None:
            self._fail(None, DIVERGED.format(what="a weight is NaN or infinite"))
        return path

    def _finish(self):
        thread_failed = self.failure is not None and self.failure[0] is not None
        # After a thread's failure the networks may still be sound: save them
        # (the save refuses non-finite weights). After divergence, keep the last good one.
        path = self._save() if self.failure is None or thread_failed else None
        self.writer.flush()
        self.writer.close()
        self.progress.close()
        if path:
            print(f"saved checkpoint {path} at T = {self.shared.T.value:,}")
        if self.failure is not None:
            thread, message = self.failure
            if thread is not None:
                message = f"actor-learner thread {thread} failed:\n{message.rstrip()}"
            print(f"error: {message}", file=sys.stderr)
            return 1
        if self.signal_received == signal.SIGTERM:
            return 128 + signal.SIGTERM
        return 0


class Progress:
    """Where training stands: T of T_max, frames/s, elapsed, time left, recent score.

    On a terminal, a live tqdm bar; in a file (CI, nohup), one plain line per
    summary interval, so the log stays readable.
    """

    def __init__(self, T, T_max, live):
        self.T_max = T_max
        self.started = time.monotonic()
        self.start_T = T
        self.bar = tqdm.tqdm(total=T_max, initial=T, unit=" steps", unit_scale=True, dynamic_ncols=True) if live else None

    def tick(self, T):
        if self.bar is not None:
            self.bar.update(T - self.bar.n)

    def report(self, T, frames_per_second, recent_score, episodes):
        score = f"{recent_score:.2f} over {episodes} episodes" if episodes else "no episode yet"
        if self.bar is not None:
            self.bar.set_postfix_str(f"{frames_per_second:,.0f} frames/s, score {score}")
            return
        elapsed = time.monotonic() - self.started
        steps_per_second = (T - self.start_T) / elapsed if elapsed > 0 else 0.0
        remaining = (self.T_max - T) / steps_per_second if steps_per_second > 0 else float("inf")
        print(
            f"T {T:,}/{self.T_max:,} | {frames_per_second:,.0f} frames/s | score {score} | "
            f"elapsed {format_duration(elapsed)} | left {format_duration(remaining)}",
            flush=True,
        )

    def write(self, message):
        if self.bar is not None:
            tqdm.tqdm.write(message)
        else:
            print(message, flush=True)

    def close(self):
        if self.bar is not None:
            self.bar.close()


def format_duration(seconds):
    if not math.isfinite(seconds):
        return "?"
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}"


# ---------------------------------------------------------------------------
# Evaluation (--testing)
# ---------------------------------------------------------------------------


def evaluate(args):
    """Play --num_eval_episodes with --eval_epsilon; print and log each score and the summary."""
    num_actions = num_actions_of(args)
    network = build_network(num_actions, args.agent_history_length)
    if args.record_video:
        ensure_writable(args.record_video)
    path = args.checkpoint_file or tf.train.latest_checkpoint(os.path.join(args.checkpoint_dir, args.experiment))
    if path is None:
        raise UsageError(
            f"--testing needs a checkpoint: none in {os.path.join(args.checkpoint_dir, args.experiment)}; "
            "train first or pass --checkpoint_file"
        )
    restore(tf.train.Checkpoint(global_network=network), path, num_actions)

    @tf.function(jit_compile=True)
    def greedy(state):
        return tf.argmax(network(state[None])[0], output_type=tf.int32)

    env = atari_wrapper.make_env(
        args.game,
        args.agent_history_length,
        noop_max=args.eval_noop_max,
        max_episode_frames=args.eval_max_episode_frames,
        render_mode="human" if args.render_environment else None,
        video_dir=args.record_video,
    )
    rng = np.random.default_rng(args.seed)
    scores, noop_frames, episode_frames = [], [], []
    print(f"testing {path} on {args.game}: {args.num_eval_episodes} episodes, epsilon {args.eval_epsilon}")
    for episode in range(args.num_eval_episodes):
        state, _ = env.reset(seed=args.seed + episode)
        score, done = 0.0, False
        while not done:
            if rng.random() < args.eval_epsilon:
                action = int(rng.integers(num_actions))
            else:
                action = int(greedy(state))
            state, reward, terminated, truncated, _ = env.step(action)
            score += reward
            done = terminated or truncated
        scores.append(score)
        noop_frames.append(env.noop_frames)
        episode_frames.append(env.episode_frames)
        print(f"episode {episode + 1}/{args.num_eval_episodes}: score {score:g}", flush=True)
    env.close()
    summary = {
        "checkpoint": path,
        "game": args.game,
        "episodes": len(scores),
        "eval_epsilon": args.eval_epsilon,
        "scores": scores,
        "mean": float(np.mean(scores)),
        "median": float(np.median(scores)),
        "std": float(np.std(scores)),
        "noop_frames": noop_frames,  # no-op frames that started each episode
        "episode_frames": episode_frames,  # frames played after them
    }
    print(f"mean score {summary['mean']:.2f} ± {summary['std']:.2f} (median {summary['median']:g})")
    with open(f"{path}.eval.json", "w") as file:
        json.dump(summary, file, indent=2)
    summary_dir = os.path.join(args.summary_dir, args.experiment, "eval")
    ensure_writable(summary_dir)
    writer = tf.summary.create_file_writer(summary_dir)
    T = int(tf.train.load_variable(path, "T/.ATTRIBUTES/VARIABLE_VALUE"))
    with writer.as_default():
        for index, score in enumerate(scores):
            tf.summary.scalar("eval/episode_score", score, step=index)
        tf.summary.scalar("eval/mean_score", summary["mean"], step=T)
        tf.summary.scalar("eval/score_std", summary["std"], step=T)
    writer.close()
    return 0
