"""The learners' algorithm, in process: returns, targets, schedules, and which network moves when.

Runs the scripts' real actor-learner loops on the Catch-v0 pixel game (see
catch.py), recording what each thread hands to the gradient step.
"""

import gymnasium as gym
import numpy as np
import pytest
import tensorflow as tf

import async_q_1step
import async_q_nstep
import async_sarsa_1step
from async_runtime.actor_learner import ActorLearner, final_epsilons
from async_runtime.rmsprop import SharedRMSProp
from async_runtime.schedules import crossed, draw_final_epsilon, epsilon_at, learning_rate_at
from async_runtime.shared_state import SharedState
from build_model import build_network

GAMMA = 0.9


# -- n-step returns and 1-step targets, by hand ---------------------------------


@pytest.mark.parametrize(
    "rewards, bootstrap, expected",
    [
        # R_3 = 2 (bootstrap); R_2 = 1 + .5*2; R_1 = 0 + .5*2; R_0 = 1 + .5*1
        ([1.0, 0.0, 1.0], 2.0, [1.5, 1.0, 2.0]),
        # a terminal state ends the segment: nothing bootstraps
        ([0.0, 0.0, -1.0], 0.0, [-0.25, -0.5, -1.0]),
        ([0.0], 4.0, [2.0]),
    ],
)
def test_n_step_returns_by_hand(rewards, bootstrap, expected):
    returns = async_q_nstep.n_step_returns(rewards, bootstrap, gamma=0.5)
    np.testing.assert_allclose(returns, expected)


def test_one_step_targets_by_hand():
    targets = async_q_1step.one_step_targets(
        rewards=[1.0, 0.0, -1.0], terminals=[False, False, True], next_max_q=[2.0, 3.0, 5.0], gamma=0.5
    )
    np.testing.assert_allclose(targets, [2.0, 1.5, -1.0])


# -- schedules --------------------------------------------------------------------


@pytest.mark.parametrize(
    "T, expected",
    [(0, 1.0), (500, 0.55), (1000, 0.1), (5000, 0.1)],
    ids=["start", "midway", "end", "past the end"],
)
def test_epsilon_schedule(T, expected):
    assert epsilon_at(T, final_epsilon=0.1, anneal_steps=1000) == pytest.approx(expected)


def test_final_epsilon_draw_follows_its_probabilities():
    rng = np.random.default_rng(0)
    draws = [draw_final_epsilon(rng, [0.1, 0.01, 0.5], [0.4, 0.3, 0.3]) for _ in range(20_000)]
    values, counts = np.unique(draws, return_counts=True)
    frequencies = dict(zip(values.tolist(), (counts / len(draws)).tolist()))
    assert frequencies == pytest.approx({0.01: 0.3, 0.1: 0.4, 0.5: 0.3}, abs=0.015)


@pytest.mark.parametrize(
    "old_T, new_T, expected",
    [(0, 5, False), (39_998, 40_003, True), (39_999, 40_000, True), (40_000, 40_005, False), (0, 80_001, True)],
)
def test_target_boundary(old_T, new_T, expected):
    assert crossed(old_T, new_T, 40_000) is expected


def test_learning_rate_anneals_to_zero_at_T_max():
    args = async_q_nstep.parse_args(["--game", "Catch-v0", "--T_max", "1000", "--learning_rate", "0.01"])
    assert [learning_rate_at(T, args) for T in (0, 500, 1000, 2000)] == pytest.approx([0.01, 0.005, 0.0, 0.0])
    args.anneal_learning_rate = False
    assert learning_rate_at(1000, args) == 0.01


def test_shared_rmsprop_by_hand():
    """grad = 0.5 * [1, -2] after the clip; g = 0.1 * grad**2 from zero; theta -= 0.01 * grad / sqrt(g + 0.1)."""
    theta = np.array([1.0, 2.0], np.float32)
    optimizer = SharedRMSProp([theta], [np.zeros(2, np.float32)], decay=0.9, epsilon=0.1)
    theta_copy = np.zeros(2, np.float32)
    optimizer.apply([tf.constant([1.0, -2.0])], 0.5, 0.01, [theta_copy])
    np.testing.assert_allclose(optimizer.mean_squares[0], [0.025, 0.1], rtol=1e-6)
    np.testing.assert_allclose(theta, [1.0 - 0.005 / 0.125**0.5, 2.0 + 0.01 / 0.2**0.5], rtol=1e-6)
    np.testing.assert_array_equal(theta_copy, theta)


def test_shared_rmsprop_flushes_subnormal_statistics_to_zero():
    """A weight whose gradient stays 0 would see its g decay into subnormal floats, which
    slowed every update several-fold on Breakout; it becomes 0 instead, and other g are untouched."""
    theta = np.ones(3, np.float32)
    tiny = np.finfo(np.float32).tiny
    mean_squares = np.array([tiny * 1.001, tiny * 0.5, 1.0], np.float32)
    optimizer = SharedRMSProp([theta], [mean_squares], decay=0.9, epsilon=0.1)
    optimizer.apply([tf.zeros(3)], 1.0, 0.01, [np.zeros(3, np.float32)])
    # 0.9 * 1.001 * tiny and 0.9 * 0.5 * tiny are subnormal; 0.9 is not.
    np.testing.assert_array_equal(optimizer.mean_squares[0], np.array([0.0, 0.0, 0.9], np.float32))
    np.testing.assert_array_equal(theta, np.ones(3, np.float32))


# -- which network moves when -------------------------------------------------------


def make_learner(script, *flags):
    args = script.parse_args(["--game", "Catch-v0", "--num_actor_threads", "1", "--gamma", str(GAMMA), *flags])
    shared = SharedState(args, num_actions=3)
    return shared, ActorLearner(0, shared, script.max_segment_steps(args))


def test_the_start_up_line_gives_the_final_epsilon_each_thread_explores_with():
    args = async_q_nstep.parse_args(["--game", "Catch-v0", "--num_actor_threads", "4", "--seed", "1"])
    shared = SharedState(args, num_actions=3)
    drawn = [ActorLearner(index, shared, max_segment_steps=5).final_epsilon for index in range(4)]
    assert final_epsilons(args) == drawn
    assert len(set(drawn)) > 1, "a seed whose threads differ, or the order goes unchecked"


def snapshot(arrays):
    return [array.copy() for array in arrays]


def same(a, b):
    return all(np.array_equal(x, y) for x, y in zip(a, b))


def test_a_gradient_moves_theta_and_the_applying_threads_theta_prime_only():
    shared, learner = make_learner(async_q_nstep, "--learning_rate", "0.01", "--num_actor_threads", "2")
    other = ActorLearner(1, shared, max_segment_steps=5)
    before_global = snapshot(shared.theta.arrays)
    before_other = [w.copy() for w in other.local.arrays]
    before_target = snapshot(shared.target.arrays)

    states = np.random.default_rng(0).integers(0, 256, (5, 84, 84, 4), dtype=np.uint8)
    learner.learn(states, [0, 1, 2, 1, 0], np.full(5, 10.0, np.float32))

    assert not same(snapshot(shared.theta.arrays), before_global)
    assert same(learner.local.arrays, snapshot(shared.theta.arrays)), "theta' <- theta after the update"
    assert same(other.local.arrays, before_other), "another thread's theta' waits for its own sync"
    assert same(snapshot(shared.target.arrays), before_target)

    other.sync_local()
    assert same(other.local.arrays, snapshot(shared.theta.arrays))
    assert same(snapshot(shared.target.arrays), before_target)
    shared.update_target()
    assert same(snapshot(shared.target.arrays), snapshot(shared.theta.arrays))
    assert_q_close(learner.max_target_q(states[:1]), target_q(shared, states[:1]))


def test_a_short_segment_updates_theta_by_its_own_states_only():
    """A 3-state segment in a 5-state batch: the update is RMSProp on the clipped
    gradient of sum_i (y_i - Q(s_i, a_i))^2 over those 3 states, whatever the
    padding rows of the batch buffers still hold from earlier segments."""
    shared, learner = make_learner(async_q_nstep, "--learning_rate", "0.01", "--clip_norm", "1.0")
    rng = np.random.default_rng(0)
    learner.states[:] = rng.integers(0, 256, learner.states.shape, dtype=np.uint8)  # a previous segment's
    learner.targets[:] = 100.0
    states = rng.integers(0, 256, (3, 84, 84, 4), dtype=np.uint8)
    actions, targets = [2, 0, 1], np.array([5.0, -3.0, 2.0], np.float32)

    theta = snapshot(shared.theta.arrays)
    network = build_network(num_actions=3)
    network.set_weights(theta)
    with tf.GradientTape() as tape:
        q = network(states)
        q_taken = tf.gather(q, actions, batch_dims=1)
        expected_loss = tf.reduce_sum(tf.square(targets - q_taken))
    gradients = tape.gradient(expected_loss, network.trainable_variables)
    gradients, norm = tf.clip_by_global_norm(gradients, 1.0)
    assert norm > 1.0, "the clip is part of what this checks"
    decay, epsilon = shared.args.decay_rate_RMSProp, shared.args.epsilon_RMSProp
    expected_theta = [
        value - 0.01 * g.numpy() / np.sqrt((1 - decay) * g.numpy() ** 2 + epsilon)
        for value, g in zip(theta, gradients)
    ]

    learner.learn(states, actions, targets)

    np.testing.assert_allclose(learner.loss_sum, float(expected_loss), rtol=1e-4)
    assert learner.loss_count == 3
    for updated, expected in zip(snapshot(shared.theta.arrays), expected_theta):
        np.testing.assert_allclose(updated, expected, rtol=1e-4, atol=1e-6)

def test_the_next_gradient_is_taken_at_the_theta_prime_the_update_wrote():
    """theta' reaches TensorFlow as tensors on the arrays the update writes: no stale copy."""
    shared, learner = make_learner(async_q_nstep, "--learning_rate", "0.01")
    rng = np.random.default_rng(1)
    states = rng.integers(0, 256, (5, 84, 84, 4), dtype=np.uint8)
    actions, targets = [0, 1, 2, 1, 0], np.full(5, 10.0, np.float32)
    learner.learn(states, actions, targets)
    first_loss = learner.loss_sum

    network = build_network(num_actions=3)
    network.set_weights(learner.local.arrays)
    q_taken = network(states).numpy()[np.arange(5), actions]
    expected_loss = float(np.sum((targets - q_taken) ** 2))
    learner.learn(states, actions, targets)

    np.testing.assert_allclose(learner.loss_sum - first_loss, expected_loss, rtol=1e-4)
    assert not np.isclose(first_loss, expected_loss, rtol=1e-3), "the update moved the loss, so this tells them apart"


class Recorder:
    """Wraps a learner's gradient and target calls to keep what the algorithm passed them."""

    def __init__(self, learner, segments):
        self.learner = learner
        self.calls = []  # (states, actions, targets, bootstrap states or None)
        self._bootstrap_states = None
        self._segments = segments
        learn, target_q_values = learner.learn, learner.target_q_values

        def recording_target_q_values(states):  # max_target_q calls it too
            self._bootstrap_states = np.array(states)
            return target_q_values(states)

        def recording_learn(states, actions, targets):
            self.calls.append((np.array(states), list(actions), np.array(targets), self._bootstrap_states))
            self._bootstrap_states = None
            learn(states, actions, targets)
            if len(self.calls) == self._segments:
                learner.shared.stop_event.set()

        learner.target_q_values = recording_target_q_values
        learner.learn = recording_learn


def target_q_values(shared, states):
    network = build_network(shared.num_actions)
    network.set_weights(shared.target.arrays)
    return network(states).numpy()


def target_q(shared, states):
    return target_q_values(shared, states).max(axis=1)


def assert_q_close(actual, expected):
    """Q-values from two float32 computations (XLA or NumPy against Keras) agree.

    Relative to 1e-5, and within 1e-7 absolutely: a Q-value near zero
    (-0.00091 once) differed by 1e-8 between them, which fails a purely
    relative tolerance. Using another network shifts them by ~1e-2.
    """
    np.testing.assert_allclose(actual, expected, rtol=1e-5, atol=1e-7)


def test_n_step_segments_bootstrap_from_the_target_network_except_at_terminal_states():
    # Catch lasts 9 steps: a 5-step segment that bootstraps, then 4 steps ending terminal.
    shared, learner = make_learner(async_q_nstep, "--learning_rate", "0.01", "--target_network_update_frequency", "1000000")
    recorder = Recorder(learner, segments=2)
    async_q_nstep.actor_learner_thread(learner, shared, shared.args)

    (states1, _, targets1, bootstrap1), (states2, _, targets2, bootstrap2) = recorder.calls
    assert len(states1) == 5 and len(states2) == 4
    expected1 = GAMMA ** np.arange(5, 0, -1) * target_q(shared, bootstrap1)[0]
    assert_q_close(targets1, expected1)
    assert bootstrap2 is None, "a terminal state must not bootstrap"
    final_reward = targets2[-1]
    assert final_reward in (-1.0, 1.0)
    np.testing.assert_allclose(targets2, final_reward * GAMMA ** np.arange(3, -1, -1), rtol=1e-6)
    assert shared.T.value == 9


def test_n_step_truncation_bootstraps():
    shared, learner = make_learner(async_q_nstep, "--target_network_update_frequency", "1000000")
    learner.env = gym.wrappers.TimeLimit(learner.env, max_episode_steps=3)
    recorder = Recorder(learner, segments=1)
    async_q_nstep.actor_learner_thread(learner, shared, shared.args)

    (states, _, targets, bootstrap), = recorder.calls
    assert len(states) == 3 and bootstrap is not None
    expected = GAMMA ** np.arange(3, 0, -1) * target_q(shared, bootstrap)[0]
    assert_q_close(targets, expected)


def test_one_step_targets_use_the_target_network_and_stop_at_terminal_states():
    shared, learner = make_learner(async_q_1step, "--async_update_frequency", "32")
    recorder = Recorder(learner, segments=1)
    async_q_1step.actor_learner_thread(learner, shared, shared.args)

    (states, _, targets, next_states), = recorder.calls
    assert len(states) == 9, "a terminal state applies the accumulated gradient early"
    assert_q_close(targets[:-1], GAMMA * target_q(shared, next_states)[:-1])
    assert targets[-1] in (-1.0, 1.0)


def test_sarsa_targets_value_the_action_the_thread_plays_next():
    """y = gamma * Q(s', a'; theta-minus) with a' the action taken next, across updates, while epsilon is high."""
    shared, learner = make_learner(
        async_sarsa_1step, "--async_update_frequency", "4", "--target_network_update_frequency", "1000000"
    )
    recorder = Recorder(learner, segments=3)
    async_sarsa_1step.actor_learner_thread(learner, shared, shared.args)

    assert [len(states) for states, *_ in recorder.calls] == [4, 4, 1], "Catch's 9 steps; the terminal ends early"
    played = sum((actions for _, actions, _, _ in recorder.calls), [])
    targets = np.concatenate([targets for _, _, targets, _ in recorder.calls])
    next_q = target_q_values(shared, np.concatenate([next_states for *_, next_states in recorder.calls]))
    expected = GAMMA * next_q[np.arange(8), played[1:]]  # the 4th a' is the next update's first action
    assert_q_close(targets[:8], expected)
    assert targets[8] in (-1.0, 1.0), "a terminal state values no next action"
    assert not np.allclose(expected, GAMMA * next_q[:8].max(axis=1)), "exploring: not Q-learning's target"


def test_the_target_network_moves_only_at_its_interval():
    shared, learner = make_learner(async_q_nstep, "--learning_rate", "0.01", "--target_network_update_frequency", "20")
    recorder = Recorder(learner, segments=3)  # T = 5, 9 (episode end), 14: below 20
    first_target = snapshot(shared.target.arrays)
    async_q_nstep.actor_learner_thread(learner, shared, shared.args)
    assert shared.T.value == 14
    assert same(snapshot(shared.target.arrays), first_target)

    shared.stop_event.clear()
    recorder._segments = 5  # a new episode: T = 19, then 23, crossing 20
    async_q_nstep.actor_learner_thread(learner, shared, shared.args)
    assert shared.T.value == 23
    assert not same(snapshot(shared.target.arrays), first_target)
    # the one-state bootstrap (NumPy) follows the new target network too
    state = recorder.calls[-1][0][:1]
    assert_q_close(learner.max_target_q(state), target_q(shared, state))


@pytest.mark.parametrize(
    "script", [async_q_nstep, async_q_1step, async_sarsa_1step], ids=["n-step", "1-step", "sarsa"]
)
def test_theta_minus_is_theta_after_each_crossing_and_still_between(script):
    """Right after the update whose T crosses a multiple of the interval, theta-minus equals theta;
    at every other update it stays as it was."""
    interval = 7
    shared, learner = make_learner(
        script, "--learning_rate", "0.01", "--target_network_update_frequency", str(interval),
        *(["--async_update_frequency", "5"] if script is not async_q_nstep else []),
    )
    seen = []  # (T, theta, theta-minus) as each update begins: what the previous iteration left
    learn = learner.learn

    def recording_learn(states, actions, targets):
        seen.append((shared.T.value, snapshot(shared.theta.arrays), snapshot(shared.target.arrays)))
        learn(states, actions, targets)
        if len(seen) == 12:
            shared.stop_event.set()

    learner.learn = recording_learn
    script.actor_learner_thread(learner, shared, shared.args)

    crossings = 0
    for (old_T, _, old_target), (T, theta, target) in zip(seen, seen[1:]):
        if crossed(old_T, T, interval):
            crossings += 1
            assert same(target, theta), f"theta-minus is not theta after T {old_T} -> {T}"
        else:
            assert same(target, old_target), f"theta-minus moved between crossings, T {old_T} -> {T}"
        assert not same(target, old_target) or not crossed(old_T, T, interval), "theta did not move"
    assert crossings >= 3


def test_one_step_truncation_bootstraps():
    """A time-limit cut ends 1-step Q's batch, and even its last target bootstraps from theta-minus."""
    shared, learner = make_learner(async_q_1step, "--target_network_update_frequency", "1000000")
    learner.env = gym.wrappers.TimeLimit(learner.env, max_episode_steps=3)
    recorder = Recorder(learner, segments=1)
    async_q_1step.actor_learner_thread(learner, shared, shared.args)

    (states, _, targets, next_states), = recorder.calls
    assert len(states) == 3, "the cut applies the accumulated gradient early"
    assert_q_close(targets, GAMMA * target_q(shared, next_states))
    assert targets[-1] != 0.0


def test_sarsa_truncation_bootstraps():
    shared, learner = make_learner(async_sarsa_1step, "--target_network_update_frequency", "1000000")
    learner.env = gym.wrappers.TimeLimit(learner.env, max_episode_steps=3)
    recorder = Recorder(learner, segments=1)
    async_sarsa_1step.actor_learner_thread(learner, shared, shared.args)

    (states, actions, targets, next_states), = recorder.calls
    assert len(states) == 3, "the cut applies the accumulated gradient early"
    assert_q_close(targets[:2], GAMMA * target_q_values(shared, next_states[:2])[[0, 1], actions[1:]])
    assert targets[-1] != 0.0, "the cut state's a' is drawn, not played, and its value bootstraps"


class GameLog:
    """Wraps a learner's emulator and learner calls to keep one game's story, then stops the run.

    A random game of Breakout lasts some 200 steps; a run that loses track of
    game over (a game reset at each lost life never ends) stops at max_steps.
    """

    max_steps = 3000

    def __init__(self, learner):
        self.rewards, self.terminated, self.truncated, self.lives = [], [], [], []
        self.resets_at = []  # emulator steps played before each reset
        self.bootstraps = []  # per update: did it bootstrap its last state?
        self.records = []
        shared, env = learner.shared, learner.env
        env_reset, env_step = env.reset, env.step
        max_target_q, learn = learner.max_target_q, learner.learn
        self._bootstrapped = False

        def reset(**kwargs):
            self.resets_at.append(len(self.lives))
            return env_reset(**kwargs)

        def step(action):
            result = env_step(action)
            self.lives.append(int(result[4]["lives"]))
            return result

        def recording_max_target_q(states):
            self._bootstrapped = True
            return max_target_q(states)

        def recording_learn(states, actions, targets):
            self.bootstraps.append(self._bootstrapped)
            self._bootstrapped = False
            learn(states, actions, targets)
            while not shared.episodes.empty():
                self.records.append(shared.episodes.get())
                shared.stop_event.set()  # one game is the story
            if len(self.lives) >= self.max_steps:
                shared.stop_event.set()

        learner_step = learner.step

        def recording_step(action):
            next_state, reward, terminated, truncated = learner_step(action)
            self.rewards.append(reward)
            self.terminated.append(terminated)
            self.truncated.append(truncated)
            return next_state, reward, terminated, truncated

        env.reset, env.step = reset, step
        learner.max_target_q, learner.learn, learner.step = (
            recording_max_target_q, recording_learn, recording_step,
        )


@pytest.mark.parametrize("episodic_life", [True, False], ids=["episodic-life", "no-episodic-life"])
def test_a_lost_life_ends_the_episode_for_learning_but_not_the_game(episodic_life):
    """With --episodic_life, each of Breakout's 5 lives ends in a terminal state (no bootstrap),
    the emulator is reset only at game over, and the one logged episode is the whole game."""
    flag = "--episodic_life" if episodic_life else "--no-episodic_life"
    args = async_q_nstep.parse_args(
        ["--game", "BreakoutNoFrameskip-v4", "--num_actor_threads", "1", "--noop_max", "0", flag, "--seed", "1"]
    )
    shared = SharedState(args, num_actions=4)
    learner = ActorLearner(0, shared, max_segment_steps=5)
    learner.final_epsilon = 1.0  # random play: it loses lives fast, and presses FIRE now and then
    log = GameLog(learner)
    async_q_nstep.actor_learner_thread(learner, shared, args)

    assert log.resets_at == [0, len(log.lives)], "the game must be reset at its start and at game over only"
    lives_lost = sum(after < before for before, after in zip([5, *log.lives], log.lives))
    assert lives_lost == 5 and log.lives[-1] == 0
    terminal_updates = log.bootstraps.count(False)
    assert sum(log.terminated) == terminal_updates == (5 if episodic_life else 1)
    (record,) = log.records
    assert record.length == len(log.rewards)
    assert record.score == sum(log.rewards)
    life_of_step = np.cumsum([0, *(after < before for before, after in zip(log.lives, log.lives[1:]))])
    assert len({life for life, reward in zip(life_of_step, log.rewards) if reward}) >= 2, "points in one life only"
