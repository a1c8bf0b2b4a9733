"""AtariWrapper, make_env and VectorAtariEnv on real ALE games (ale-py ships the ROMs).

A "twin" is a raw gymnasium env of the same id, reset with the same seed and
stepped by hand; v4 ids have no sticky actions, so twin and wrapper emulate
the same frames for the same actions.
"""

import re

import gymnasium as gym
import numpy as np
import pytest

import atari_wrapper
import catch
from atari_wrapper import AtariWrapper, UnknownGameError, VectorAtariEnv, make_env, preprocess_frame

BREAKOUT = "BreakoutNoFrameskip-v4"
PONG = "PongNoFrameskip-v4"
FIRE = 1  # action 1 is FIRE in Breakout and Pong; Breakout needs it to launch a ball
REPEAT = atari_wrapper.NATURE_ACTION_REPEAT


@pytest.fixture(autouse=True)
def _registered():
    atari_wrapper.register_games()


@pytest.fixture
def closing():
    """Collect envs made in a test and close them when it ends."""
    envs = []

    def keep(env):
        envs.append(env)
        return env

    yield keep
    for env in envs:
        env.close()


def raw_twin(game, seed):
    """A raw env of ``game`` reset with ``seed``, and its first RGB frame."""
    env = gym.make(game)
    frame, _ = env.reset(seed=seed)
    return env, frame


def twin_step(env, action, repeat=REPEAT):
    """Step a raw NoFrameskip env ``repeat`` frames by hand, as the paper's preprocessing does.

    Returns the preprocessed max of the last two RGB frames, the summed reward
    and the end flags of the last frame stepped.
    """
    frames, total = [], 0.0
    for _ in range(repeat):
        frame, reward, terminated, truncated, _ = env.step(action)
        frames.append(frame)
        total += reward
        if terminated or truncated:
            break
    pooled = frames[-1] if len(frames) == 1 else np.maximum(frames[-2], frames[-1])
    return preprocess_frame(pooled), total, terminated, truncated


def actions(num_actions, count, seed=0, fire_every=50):
    """FIRE now and then (to serve new balls), random actions otherwise."""
    rng = np.random.default_rng(seed)
    return [FIRE if t % fire_every == 0 else int(rng.integers(num_actions)) for t in range(count)]


# -- shapes -------------------------------------------------------------------


@pytest.mark.parametrize(
    "game, history",
    [(BREAKOUT, 4), (BREAKOUT, 2), ("ALE/Breakout-v5", 4), ("Catch-v0", 4), ("Catch-v0", 1)],
)
def test_state_shape_dtype_and_observation_space(closing, game, history):
    """States are uint8 (84, 84, m) on reset and step, and lie in observation_space."""
    env = closing(make_env(game, agent_history_length=history))
    expected = (atari_wrapper.FRAME_SIZE, atari_wrapper.FRAME_SIZE, history)
    assert env.observation_space.shape == expected
    assert env.observation_space.dtype == np.uint8
    state, _ = env.reset(seed=0)
    next_state, *_ = env.step(0)
    for s in (state, next_state):
        assert s.shape == expected
        assert s.dtype == np.uint8
        assert env.observation_space.contains(s)


@pytest.mark.parametrize(
    "kwargs", [{"agent_history_length": 0}, {"action_repeat": 0}, {"noop_max": -1}], ids=lambda k: next(iter(k))
)
def test_invalid_wrapper_settings_raise_value_error(kwargs):
    """Non-positive history or repeat, and a negative noop_max, are rejected."""
    env = gym.make(BREAKOUT)
    try:
        with pytest.raises(ValueError, match=next(iter(kwargs))):
            AtariWrapper(env, **kwargs)
    finally:
        env.close()


def test_make_env_rejects_negative_noop_max():
    """make_env passes noop_max through, so a negative one raises ValueError."""
    with pytest.raises(ValueError, match="noop_max"):
        make_env(BREAKOUT, noop_max=-1)


# -- the frame stack ----------------------------------------------------------


def test_newest_frame_is_last_channel_and_equals_pooled_screen(closing):
    """The last channel is the preprocessed max of the last two frames of the 4 repeats.

    The twin's frames change from step to step (the ball moves), so a stack
    built in the reverse order would fail the comparison.
    """
    env = closing(make_env(BREAKOUT))
    env.reset(seed=3)
    twin, _ = raw_twin(BREAKOUT, seed=3)
    closing(twin)
    previous = None
    changed = 0
    for action in actions(env.action_space.n, 30, seed=3, fire_every=10):
        state, *_ = env.step(action)
        expected, *_ = twin_step(twin, action)
        np.testing.assert_array_equal(state[..., -1], expected)
        if previous is not None and not np.array_equal(previous, expected):
            changed += 1
            assert not np.array_equal(state[..., 0], expected)  # oldest is not the newest
        previous = expected
    assert changed > 5, "the screen hardly changed, so the order was not tested"


@pytest.mark.parametrize("factory", [make_env, VectorAtariEnv], ids=["AtariWrapper", "VectorAtariEnv"])
def test_each_step_shifts_the_stack_left_by_one(closing, factory):
    """Channels 0..m-2 of a state are channels 1..m-1 of the state before it."""
    env = closing(factory(BREAKOUT))
    previous, _ = env.reset(seed=0)
    for action in actions(env.action_space.n, 12, fire_every=6):
        state, *_ = env.step(action)
        np.testing.assert_array_equal(state[..., :-1], previous[..., 1:])
        previous = state


@pytest.mark.parametrize("factory", [make_env, VectorAtariEnv], ids=["AtariWrapper", "VectorAtariEnv"])
@pytest.mark.parametrize("history", [4, 2])
def test_reset_fills_every_channel_with_the_first_frame(closing, factory, history):
    """After reset, all m channels hold the preprocessed first screen, also on a second reset."""
    env = closing(factory(BREAKOUT, agent_history_length=history))
    twin, first_frame = raw_twin(BREAKOUT, seed=0)
    closing(twin)
    expected = preprocess_frame(first_frame)
    assert expected.any(), "the first screen is blank, so the fill was not tested"
    for seed in (0, None):  # None: a reset after steps, as the learners do
        state, _ = env.reset(seed=seed)
        for channel in range(history):
            np.testing.assert_array_equal(state[..., channel], expected)
        for action in actions(env.action_space.n, history + 2):
            env.step(action)


# -- action repeat and rewards ------------------------------------------------


@pytest.mark.parametrize("game", [PONG, BREAKOUT])
def test_rewards_and_flags_match_a_hand_stepped_twin(closing, game):
    """Each step's reward is the sum of the rewards of its 4 raw frames; the end flags agree."""
    env = closing(make_env(game))
    env.reset(seed=1)
    twin, _ = raw_twin(game, seed=1)
    closing(twin)
    nonzero = 0
    for action in actions(env.action_space.n, 300, seed=1):
        _, reward, terminated, truncated, _ = env.step(action)
        _, expected, twin_terminated, twin_truncated = twin_step(twin, action)
        assert reward == expected
        assert (terminated, truncated) == (twin_terminated, twin_truncated)
        nonzero += reward != 0
        if terminated or truncated:
            break
    assert nonzero > 0, "no reward in the run, so the sum was not tested"


@pytest.mark.parametrize(
    "game, action_repeat, frames_per_step",
    [
        (BREAKOUT, 4, {4}),  # 4 repeats of 1 frame
        ("ALE/Breakout-v5", 1, {4}),  # the env skips 4 frames itself
        ("SpaceInvaders-v0", 1, {2, 3, 4}),  # the env skips 2 to 4 frames at random
    ],
)
def test_action_repeat_and_emulator_frames_per_step(closing, game, action_repeat, frames_per_step):
    """action_repeat is 4 only where the env skips no frames; a step emulates the expected frames."""
    env = closing(make_env(game))
    assert env.action_repeat == action_repeat
    _, info = env.reset(seed=0)
    frame_number = info["episode_frame_number"]
    assert frame_number == 0
    seen = set()
    for action in actions(env.action_space.n, 40):
        _, _, terminated, truncated, info = env.step(action)
        assert not (terminated or truncated)
        advance = info["episode_frame_number"] - frame_number
        assert advance in frames_per_step
        assert env.unwrapped.ale.getEpisodeFrameNumber() == info["episode_frame_number"]
        seen.add(advance)
        frame_number = info["episode_frame_number"]
    assert seen == frames_per_step


@pytest.mark.parametrize(
    "game, expected",
    [(BREAKOUT, 4), ("ALE/Breakout-v5", 4), ("SpaceInvaders-v0", 3), ("Catch-v0", 1)],
)
def test_frames_per_step_of_wrapped_envs(closing, game, expected):
    """frames_per_step: repeats times the env's own skip (the mean of range(2, 5) for -v0)."""
    assert atari_wrapper.frames_per_step(closing(make_env(game))) == expected


def test_frames_per_step_of_vector_env(closing):
    """VectorAtariEnv emulates 4 frames per step on a NoFrameskip-v4 id."""
    assert atari_wrapper.frames_per_step(closing(VectorAtariEnv(BREAKOUT))) == 4


# -- episode ends -------------------------------------------------------------


@pytest.mark.parametrize("game", [BREAKOUT, "ALE/Breakout-v5"])
def test_frame_cap_truncates_without_terminating(closing, game):
    """max_episode_frames ends the episode as truncated (not terminated) at the cap."""
    cap = 40
    env = closing(make_env(game, max_episode_frames=cap))
    env.reset(seed=0)
    for _ in range(cap):  # at least 1 frame per step, so the cap comes within `cap` steps
        _, _, terminated, truncated, info = env.step(0)
        assert not terminated
        if truncated:
            break
    assert truncated
    assert info["episode_frame_number"] == cap


def test_catch_terminates_when_the_ball_lands(closing):
    """Catch-v0 through the wrapper ends, terminated, when the ball reaches the bottom row."""
    env = closing(make_env("Catch-v0", max_episode_frames=3))  # the cap applies to ALE ids only
    env.reset(seed=0)
    for step in range(1, catch.ROWS):
        _, reward, terminated, truncated, _ = env.step(1)
        assert not truncated
        assert terminated == (step == catch.ROWS - 1)
    assert reward in (-1.0, 1.0)


def test_breakout_terminates_when_the_last_life_is_lost(closing):
    """An ALE game that runs out of lives reports terminated=True, truncated=False."""
    env = closing(make_env(BREAKOUT))
    env.reset(seed=0)
    for action in actions(env.action_space.n, 3000):
        _, _, terminated, truncated, info = env.step(action)
        assert not truncated
        if terminated:
            break
    assert terminated
    assert info["lives"] == 0


# -- no-op starts -------------------------------------------------------------


def test_noop_starts_vary_with_the_seed_and_match_the_twin(closing):
    """noop_max=30: resets start 0..30 frames in, spread over seeds, reproducibly.

    The state is the screen a twin shows after that many no-ops.
    """
    env = closing(make_env(BREAKOUT, noop_max=30))
    starts = []
    for seed in range(10):
        state, info = env.reset(seed=seed)
        start = info["episode_frame_number"]
        assert 0 <= start <= 30
        starts.append(start)
        twin, frame = raw_twin(BREAKOUT, seed=seed)
        closing(twin)
        for _ in range(start):
            frame, *_ = twin.step(0)
        np.testing.assert_array_equal(state[..., -1], preprocess_frame(frame))
        again, info_again = env.reset(seed=seed)
        assert info_again["episode_frame_number"] == start
        np.testing.assert_array_equal(again, state)
    assert sum(start > 0 for start in starts) >= 7
    assert len(set(starts)) >= 4


def test_noop_max_zero_starts_at_frame_zero(closing):
    """noop_max=0: every reset starts at frame 0."""
    env = closing(make_env(BREAKOUT, noop_max=0))
    for seed in range(5):
        _, info = env.reset(seed=seed)
        assert info["episode_frame_number"] == 0


# -- unknown ids --------------------------------------------------------------


@pytest.mark.parametrize(
    "typo, close_id",
    [
        ("BreakotNoFrameskip-v4", "BreakoutNoFrameskip-v4"),
        ("Pongg-v4", "Pong-v4"),
        ("SpaceInvader-v0", "SpaceInvaders-v0"),
        ("Catch-v1", "Catch-v0"),
    ],
)
def test_unknown_id_raises_naming_close_ids(typo, close_id):
    """make_env on a typo raises UnknownGameError (a ValueError) that names the intended id."""
    assert issubclass(UnknownGameError, ValueError)
    with pytest.raises(UnknownGameError, match=rf"{re.escape(repr(typo))}.*closest known ids: .*\b{re.escape(close_id)}\b"):
        make_env(typo)


def test_unknown_id_without_close_match_names_none():
    """An id like nothing known raises UnknownGameError without a list of close ids."""
    with pytest.raises(UnknownGameError) as error:
        make_env("zzqx")
    assert "closest" not in str(error.value)


def test_vector_env_settings_rejects_unknown_id():
    """vector_env_settings checks the id as make_env does."""
    with pytest.raises(UnknownGameError, match=re.escape("BreakoutNoFrameskip-v4")):
        atari_wrapper.vector_env_settings("BreakotNoFrameskip-v4")


# -- the fast path: VectorAtariEnv --------------------------------------------


@pytest.mark.parametrize("game", ["SpaceInvaders-v0", "Catch-v0"])
def test_vector_env_refuses_ids_without_a_fixed_skip(game):
    """-v0 ids (random skip) and non-ALE envs have no vector settings; the class raises ValueError."""
    assert atari_wrapper.vector_env_settings(game) is None
    with pytest.raises(ValueError, match="no fixed frame skip"):
        VectorAtariEnv(game)


@pytest.mark.parametrize(
    "game, settings",
    [
        (BREAKOUT, {"game": "breakout", "frameskip": 4, "repeat_action_probability": 0.0}),
        ("ALE/Breakout-v5", {"game": "breakout", "frameskip": 4, "repeat_action_probability": 0.25}),
    ],
)
def test_vector_env_settings_of_fixed_skip_ids(game, settings):
    """NoFrameskip-v4 gets the wrapper's 4 repeats; v5 keeps its own skip and sticky actions."""
    assert atari_wrapper.vector_env_settings(game) == settings


def _mean_and_max_abs_diff(a, b):
    diff = np.abs(a.astype(np.int16) - b.astype(np.int16))
    return float(diff.mean()), int(diff.max())


# "Within a few grey levels": the bounds a state of VectorAtariEnv must keep to
# AtariWrapper's state for the same seed and actions.
MAX_MEAN_ABS_DIFF = 0.5
MAX_ABS_DIFF = 8


def test_vector_env_matches_atari_wrapper(closing):
    """Same seed, same actions, over two episodes: near-equal states, equal rewards and flags.

    On the step that ends an episode mid-repeat, ale-py's vector env does not
    refresh the newest frame (it keeps the previous step's), so there only the
    older channels are compared; no learner bootstraps from a terminal state.
    """
    wrapper = closing(make_env(BREAKOUT))
    vector = closing(VectorAtariEnv(BREAKOUT))
    assert vector.observation_space == wrapper.observation_space
    assert vector.action_space.n == wrapper.action_space.n
    episodes, rewards, steps = 0, 0, 0
    for seed in (0, None):
        state_w, info_w = wrapper.reset(seed=seed)
        state_v, info_v = vector.reset(seed=seed)
        assert state_v.shape == state_w.shape and state_v.dtype == np.uint8
        np.testing.assert_array_equal(state_v, state_w)
        assert info_v["lives"] == info_w["lives"]
        for action in actions(wrapper.action_space.n, 1000, seed=episodes):
            state_w, reward_w, terminated_w, truncated_w, info_w = wrapper.step(action)
            state_v, reward_v, terminated_v, truncated_v, info_v = vector.step(action)
            assert (reward_v, terminated_v, truncated_v) == (reward_w, terminated_w, truncated_w)
            assert info_v["episode_frame_number"] == info_w["episode_frame_number"]
            assert info_v["lives"] == info_w["lives"]
            compared = slice(None, -1) if terminated_w else slice(None)
            mean_diff, max_diff = _mean_and_max_abs_diff(state_v[..., compared], state_w[..., compared])
            assert mean_diff <= MAX_MEAN_ABS_DIFF and max_diff <= MAX_ABS_DIFF, (steps, mean_diff, max_diff)
            rewards += reward_w != 0
            steps += 1
            if terminated_w or truncated_w:
                break
        episodes += terminated_w
    assert episodes == 2, "an episode did not end, so the end flags were not compared"
    assert rewards > 0, "no reward in the run, so rewards were not compared"
