"""AtariWrapper, make_env and VectorAtariEnv on real ALE games (ale-py ships the ROMs).

A "twin" is a raw gymnasium env of the same id, one frame per step in the
ALE's grayscale, reset with the same seed and stepped by hand; v4 ids have no
sticky actions, so twin and wrapper emulate the same frames for the same
actions.
"""

import re

import gymnasium as gym
import numpy as np
import pytest

import atari_wrapper
import catch
from atari_wrapper import AtariWrapper, UnknownGameError, VectorAtariEnv, make_env, resize

BREAKOUT = "BreakoutNoFrameskip-v4"
PONG = "PongNoFrameskip-v4"
FIRE = 1  # action 1 is FIRE in Breakout and Pong; Breakout needs it to launch a ball
REPEAT = atari_wrapper.NATURE_FRAME_SKIP


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
    """A raw env of ``game`` (one grayscale frame per step) reset with ``seed``, and its first frame."""
    env = gym.make(game, obs_type="grayscale", frameskip=1)
    frame, _ = env.reset(seed=seed)
    return env, frame


def twin_step(env, action, repeat=REPEAT):
    """Step a raw one-frame env ``repeat`` frames by hand, as the preprocessing says.

    Returns the resized max of the last two grayscale frames, the summed
    reward and the end flags of the last frame stepped.
    """
    frames, total = [], 0.0
    for _ in range(repeat):
        frame, reward, terminated, truncated, _ = env.step(action)
        frames.append(frame)
        total += reward
        if terminated or truncated:
            break
    pooled = frames[-1] if len(frames) == 1 else np.maximum(frames[-2], frames[-1])
    return resize(pooled), total, terminated, truncated


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
    "kwargs",
    [
        {"agent_history_length": 0},
        {"frame_skip": 0},
        {"frame_skip": (3, 3)},
        {"noop_max": -1},
        {"max_episode_frames": 0},
    ],
    ids=lambda k: f"{next(iter(k))}={next(iter(k.values()))}",
)
def test_invalid_wrapper_settings_raise_value_error(kwargs):
    """Non-positive history, skip or frame cap, an empty skip range and a negative noop_max are rejected."""
    env = gym.make(BREAKOUT, obs_type="grayscale")
    try:
        with pytest.raises(ValueError, match=next(iter(kwargs))):
            AtariWrapper(env, **kwargs)
    finally:
        env.close()


@pytest.mark.parametrize(
    "make_kwargs, message",
    [({"obs_type": "grayscale", "frameskip": 4}, "frameskip=1"), ({"obs_type": "rgb"}, "grayscale")],
    ids=["skips-frames-itself", "rgb-frames"],
)
def test_wrapper_refuses_ale_envs_it_cannot_preprocess_exactly(make_kwargs, message):
    """An ALE env that skips frames itself (no pooling possible) or gives RGB (other grey levels) is refused."""
    env = gym.make(BREAKOUT, **make_kwargs)
    try:
        with pytest.raises(ValueError, match=re.escape(message)):
            AtariWrapper(env)
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
@pytest.mark.parametrize("history", [4, 2])
def test_each_step_shifts_the_stack_left_by_one(closing, factory, history):
    """Channels 0..m-2 of a state are channels 1..m-1 of the state before it."""
    env = closing(factory(BREAKOUT, agent_history_length=history))
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
    expected = resize(first_frame)
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
    "game, frame_skip, frames_per_step",
    [
        (BREAKOUT, 4, {4}),  # the id skips no frames: the Nature DQN's 4
        ("ALE/Breakout-v5", 4, {4}),  # the id's own 4
        ("SpaceInvaders-v0", (2, 5), {2, 3, 4}),  # the id's own: 2 to 4 at random
    ],
)
def test_frame_skip_and_emulator_frames_per_step(closing, game, frame_skip, frames_per_step):
    """The wrapper skips as the id says, on an env that emulates one frame per step."""
    env = closing(make_env(game))
    assert env.frame_skip == frame_skip
    assert env.unwrapped._frameskip == 1
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


@pytest.mark.parametrize("factory", [make_env, VectorAtariEnv], ids=["AtariWrapper", "VectorAtariEnv"])
@pytest.mark.parametrize("game", [BREAKOUT, "ALE/Breakout-v5"])
@pytest.mark.parametrize("cap, frames_at_cut", [(40, 40), (41, 44)])
def test_frame_cap_truncates_at_the_end_of_the_step_that_reaches_it(closing, factory, game, cap, frames_at_cut):
    """max_episode_frames ends the episode as truncated (not terminated), the step played whole."""
    env = closing(factory(game, max_episode_frames=cap))
    env.reset(seed=0)
    for step in range(1, cap + 1):
        _, _, terminated, truncated, info = env.step(0)
        assert not terminated
        assert truncated == (step * REPEAT >= cap)
        if truncated:
            break
    assert info["episode_frame_number"] == frames_at_cut


def test_frame_cap_counts_from_after_the_noops(closing):
    """The cap counts the frames played, not the no-op frames that started the episode."""
    env = closing(make_env(BREAKOUT, noop_max=30, max_episode_frames=40))
    _, info = env.reset(seed=1)
    assert env.noop_frames == info["episode_frame_number"] > 0
    truncated = False
    while not truncated:
        _, _, _, truncated, info = env.step(0)
    assert env.episode_frames == 40
    assert info["episode_frame_number"] == env.noop_frames + 40


def test_catch_terminates_when_the_ball_lands(closing):
    """Catch-v0 through the wrapper ends, terminated, when the ball reaches the bottom row."""
    env = closing(make_env("Catch-v0"))
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
        assert env.noop_frames == start
        assert 0 <= start <= 30
        starts.append(start)
        twin, frame = raw_twin(BREAKOUT, seed=seed)
        closing(twin)
        for _ in range(start):
            frame, *_ = twin.step(0)
        np.testing.assert_array_equal(state[..., -1], resize(frame))
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


def test_vector_env_noop_starts_are_0_to_noop_max_frames(closing):
    """VectorAtariEnv's no-op starts span 0..noop_max frames, as AtariWrapper's do; 0 turns them off."""
    starts = set()
    env = closing(VectorAtariEnv(BREAKOUT, noop_max=3))
    for seed in range(40):
        _, info = env.reset(seed=seed)
        starts.add(int(info["episode_frame_number"]))
    assert starts == {0, 1, 2, 3}
    env = closing(VectorAtariEnv(BREAKOUT, noop_max=0))
    for seed in range(5):
        _, info = env.reset(seed=seed)
        assert info["episode_frame_number"] == 0


# Same seed, same random actions: every pixel of every state, rewards, end flags
# and lives. The cap of 801 frames is no multiple of 4: the cut comes inside a
# repeat, where ale-py's C++ would stop without reading the frame.
EQUALITY_STEPS = 400
EQUALITY_CAP = 801
EQUALITY_SEED = 1


@pytest.mark.parametrize(
    "game, sticky",
    [
        (BREAKOUT, None),
        (PONG, None),
        ("MsPacmanNoFrameskip-v4", None),
        ("SpaceInvadersNoFrameskip-v4", None),
        # Sticky actions off: each path would draw them from its own random stream.
        ("ALE/Breakout-v5", 0.0),
    ],
)
def test_vector_env_states_equal_atari_wrapper_states_exactly(closing, game, sticky):
    """Training's path and --testing's path give the same states, bit for bit, every step.

    Breakout's first game (seed 1) ends on the last frame of a repeat (frame
    748), one that would have been read for the max-pool had the game gone
    on; every game is cut by the frame cap at least once; play goes on over
    resets.
    """
    wrapper = closing(make_env(game, max_episode_frames=EQUALITY_CAP, repeat_action_probability=sticky))
    vector = closing(VectorAtariEnv(game, max_episode_frames=EQUALITY_CAP, repeat_action_probability=sticky))
    assert vector.observation_space == wrapper.observation_space
    assert vector.action_space.n == wrapper.action_space.n
    rng = np.random.default_rng(EQUALITY_SEED)
    state_w, _ = wrapper.reset(seed=EQUALITY_SEED)
    state_v, _ = vector.reset(seed=EQUALITY_SEED)
    np.testing.assert_array_equal(state_v, state_w)
    ends = {"game over on a pooled frame": 0, "game over": 0, "cut": 0}
    rewards = 0
    for step in range(EQUALITY_STEPS):
        action = int(rng.integers(wrapper.action_space.n))
        state_w, reward_w, terminated_w, truncated_w, info_w = wrapper.step(action)
        state_v, reward_v, terminated_v, truncated_v, info_v = vector.step(action)
        assert (reward_v, terminated_v, truncated_v) == (reward_w, terminated_w, truncated_w), step
        assert (info_v["lives"], info_v["episode_frame_number"]) == (info_w["lives"], info_w["episode_frame_number"])
        np.testing.assert_array_equal(state_v, state_w, err_msg=f"step {step}")
        rewards += reward_w != 0
        if terminated_w:  # frames 3 and 4 of a repeat are the pooled ones
            pooled_frame = info_w["episode_frame_number"] % REPEAT in (3, 0)
            ends["game over on a pooled frame" if pooled_frame else "game over"] += 1
        ends["cut"] += truncated_w
        if terminated_w or truncated_w:
            state_w, _ = wrapper.reset()
            state_v, _ = vector.reset()
            np.testing.assert_array_equal(state_v, state_w)
    assert ends["cut"] >= 1, ends
    assert rewards > 0, "no reward in the run, so rewards were not compared"
    if game == BREAKOUT:
        assert ends["game over on a pooled frame"] >= 1, ends
