"""Atari preprocessing of Mnih et al. 2015, as a gymnasium wrapper.

Stages, in order, for every agent step:

1. Action repeat: on an env that does not skip frames itself (the
   ``NoFrameskip-v4`` ids) the action is repeated 4 times, the rewards are
   summed and the pixel-wise maximum of the last two RGB frames is kept
   (Atari sprites flicker: some are drawn only every other frame). Envs that
   skip frames themselves (``-v0`` ids: 2 to 5 frames at random; ``ALE/...-v5``
   ids: 4 frames) get no extra repeat.
2. The RGB frame (210, 160, 3) becomes grayscale and is resized to 84x84
   with OpenCV's area interpolation.
3. The state is the m most recent frames, a uint8 array (84, 84, m), newest
   frame last (channels-last, as Keras convolutions expect). ``reset`` fills
   the stack with the first frame.

Rewards are the game's own: clipping them is the learner's job, so the score
a user sees is the real one. Example::

    >>> env = make_env("BreakoutNoFrameskip-v4")
    >>> state, info = env.reset(seed=0)
    >>> state.shape, state.dtype
    ((84, 84, 4), dtype('uint8'))
    >>> state, reward, terminated, truncated, info = env.step(1)
"""

import difflib

import ale_py
import cv2
import gymnasium as gym
import numpy as np

FRAME_SIZE = 84
NATURE_ACTION_REPEAT = 4


class UnknownGameError(ValueError):
    """A game id that gymnasium does not know; the message names the closest ids."""


class AtariWrapper(gym.Wrapper):
    """Grayscale 84x84 frames, stacked m deep, with action repeat where the env has none.

    Args:
        env: an env made with ``gymnasium.make`` that returns RGB frames.
        agent_history_length: m, the number of frames in a state.
        action_repeat: frames per agent step; ``None`` picks 4 for an ALE env
            that does not skip frames itself and 1 for any other env.
        noop_max: on reset, take a random number (0 to noop_max) of no-op
            actions (action 0) so that evaluation episodes start differently.
    """

    def __init__(self, env, agent_history_length=4, action_repeat=None, noop_max=0):
        super().__init__(env)
        if agent_history_length < 1:
            raise ValueError(f"agent_history_length must be at least 1, got {agent_history_length}")
        if noop_max < 0:
            raise ValueError(f"noop_max must be 0 or more, got {noop_max}")
        if action_repeat is None:
            action_repeat = NATURE_ACTION_REPEAT if _skips_no_frames(env) else 1
        if action_repeat < 1:
            raise ValueError(f"action_repeat must be at least 1, got {action_repeat}")
        self.agent_history_length = agent_history_length
        self.action_repeat = action_repeat
        self.noop_max = noop_max
        self.observation_space = gym.spaces.Box(
            0, 255, (FRAME_SIZE, FRAME_SIZE, agent_history_length), dtype=np.uint8
        )
        self._stack = np.zeros(self.observation_space.shape, dtype=np.uint8)

    def reset(self, *, seed=None, options=None):
        frame, info = self.env.reset(seed=seed, options=options)
        if self.noop_max > 0:
            for _ in range(self.np_random.integers(0, self.noop_max + 1)):
                frame, _, terminated, truncated, info = self.env.step(0)
                if terminated or truncated:
                    frame, info = self.env.reset()
        self._stack[...] = preprocess_frame(frame)[..., None]
        return self._stack.copy(), info

    def step(self, action):
        total_reward = 0.0
        last_frames = []
        for _ in range(self.action_repeat):
            frame, reward, terminated, truncated, info = self.env.step(action)
            total_reward += reward
            last_frames = [*last_frames[-1:], frame]
            if terminated or truncated:
                break
        frame = last_frames[0] if len(last_frames) == 1 else np.maximum(*last_frames)
        self._stack[..., :-1] = self._stack[..., 1:]
        self._stack[..., -1] = preprocess_frame(frame)
        return self._stack.copy(), total_reward, terminated, truncated, info


def preprocess_frame(rgb_frame):
    """One RGB frame (210, 160, 3) to a grayscale uint8 frame (84, 84)."""
    gray = cv2.cvtColor(rgb_frame, cv2.COLOR_RGB2GRAY)
    return cv2.resize(gray, (FRAME_SIZE, FRAME_SIZE), interpolation=cv2.INTER_AREA)


def _skips_no_frames(env):
    # ALE envs say how many frames one step emulates: 1 for NoFrameskip-v4,
    # a (low, high) range for -v0, 4 for -v5. Other envs do not say.
    return getattr(env.unwrapped, "_frameskip", None) == 1


def register_games():
    """Make every ALE id (and this project's test games) known to gymnasium."""
    gym.register_envs(ale_py)
    import catch  # noqa: F401  registers Catch-v0 on import


def check_game(game):
    """Raise UnknownGameError, naming the closest known ids, if gymnasium lacks ``game``."""
    register_games()
    if game not in gym.registry:
        close = difflib.get_close_matches(game, gym.registry.keys(), n=3, cutoff=0.5)
        hint = f"; closest known ids: {', '.join(close)}" if close else ""
        raise UnknownGameError(f"unknown game {game!r}{hint}")


def make_env(
    game, agent_history_length=4, noop_max=0, max_episode_frames=None, render_mode=None, video_dir=None
):
    """Make ``game`` with gymnasium and wrap it in AtariWrapper.

    ``max_episode_frames`` caps an episode in emulator frames (ALE ids only);
    the episode then ends as truncated, not terminated. ``video_dir`` records
    every episode there as MP4, at full resolution and every emulator frame.
    """
    check_game(game)
    kwargs = {"render_mode": "rgb_array" if video_dir else render_mode}
    if max_episode_frames is not None and _is_ale(game):
        kwargs["max_num_frames_per_episode"] = max_episode_frames
    env = gym.make(game, **kwargs)
    if video_dir:
        # Beneath AtariWrapper, so the video shows the game, not the agent's 84x84 view.
        env = gym.wrappers.RecordVideo(env, video_dir, episode_trigger=lambda _: True, disable_logger=True)
    return AtariWrapper(env, agent_history_length=agent_history_length, noop_max=noop_max)


def frames_per_step(env):
    """Emulator frames behind one agent step of a wrapped env (the mean, for random skips)."""
    if isinstance(env, VectorAtariEnv):
        return env.frameskip
    skip = getattr(env.unwrapped, "_frameskip", 1)
    if isinstance(skip, tuple):  # -v0 ids draw from range(low, high)
        skip = (skip[0] + skip[1] - 1) / 2
    return env.action_repeat * skip


# -- The fast path: one emulator stepped in C++, outside Python's GIL ---------


class VectorAtariEnv:
    """One ALE game behind ale-py's AtariVectorEnv, with AtariWrapper's interface.

    A gymnasium ALE env holds Python's GIL while it emulates, so threads that
    step such envs take turns. AtariVectorEnv emulates, max-pools, converts to
    grayscale, resizes and stacks frames in C++ with the GIL released, so each
    actor-learner thread's emulator runs beside the others. Its states equal
    AtariWrapper's on a ``NoFrameskip-v4`` id, but for the newest frame of a
    step that ends the game mid-repeat (ale-py keeps the one before; nothing
    bootstraps from a terminal state). AtariWrapper stays the reference.

    Only ids with a fixed frame skip qualify: ``NoFrameskip-v4`` ids (this
    class repeats actions 4 times, as AtariWrapper does) and ``ALE/...-v5`` ids
    (4 frames, sticky actions, as gymnasium makes them, plus the max-pool of the
    last two frames that gymnasium's v5 envs skip). The ``-v0`` ids draw a
    random skip per step, which this path cannot reproduce.
    """

    def __init__(self, game, agent_history_length=4, max_episode_frames=None):
        settings = vector_env_settings(game)
        if settings is None:
            raise ValueError(f"{game!r} has no fixed frame skip; use AtariWrapper (make_env)")
        from ale_py.vector_env import AtariVectorEnv

        self.frameskip = settings["frameskip"]
        self._env = AtariVectorEnv(
            settings["game"],
            num_envs=1,
            num_threads=1,  # one emulator per actor-learner thread
            frameskip=self.frameskip,
            repeat_action_probability=settings["repeat_action_probability"],
            stack_num=agent_history_length,
            img_height=FRAME_SIZE,
            img_width=FRAME_SIZE,
            max_num_frames_per_episode=max_episode_frames or 108_000,
            # AtariWrapper's behaviour: real rewards, no no-ops, no automatic FIRE.
            noop_max=0,
            reward_clipping=False,
            use_fire_reset=False,
        )
        self.action_space = self._env.single_action_space
        self.observation_space = gym.spaces.Box(
            0, 255, (FRAME_SIZE, FRAME_SIZE, agent_history_length), dtype=np.uint8
        )
        # AtariVectorEnv fills the stack slots older than an episode's first frame
        # with zeros; AtariWrapper fills them with the first frame. Until the first
        # m - 1 steps have pushed them out, this class fills them as AtariWrapper does.
        self._first_frame = None
        self._padding = 0

    def reset(self, *, seed=None, options=None):
        frames, info = self._env.reset(seed=seed, options=options)
        self._first_frame = frames[0, -1].copy()
        self._padding = frames.shape[1] - 1
        return self._state(frames), _first(info)

    def step(self, action):
        frames, reward, terminated, truncated, info = self._env.step(np.array([action]))
        self._padding = max(self._padding - 1, 0)
        return self._state(frames), float(reward[0]), bool(terminated[0]), bool(truncated[0]), _first(info)

    def close(self):
        self._env.close()

    def _state(self, frames):
        # (1, m, 84, 84), oldest first -> (84, 84, m), newest last, as AtariWrapper gives.
        state = np.ascontiguousarray(frames[0].transpose(1, 2, 0))
        if self._padding:
            state[..., : self._padding] = self._first_frame[..., None]
        return state


def vector_env_settings(game):
    """AtariVectorEnv's settings for a gymnasium ALE id, or None if it cannot run it."""
    check_game(game)
    if not _is_ale(game):
        return None
    kwargs = gym.spec(game).kwargs
    skip = kwargs.get("frameskip", 4)
    if isinstance(skip, tuple):
        return None
    return {
        "game": kwargs["game"],
        "frameskip": NATURE_ACTION_REPEAT if skip == 1 else skip,
        "repeat_action_probability": kwargs.get("repeat_action_probability", 0.25),
    }


def _is_ale(game):
    return "ale_py" in str(gym.spec(game).entry_point)


def _first(info):
    return {key: value[0] for key, value in info.items()}
