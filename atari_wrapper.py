"""Atari preprocessing of Mnih et al. 2015: one pipeline, two implementations.

Stages, in order, for every agent step:

1. Frame skip: the action is played for k emulator frames and their rewards
   summed. k is 4 for ``NoFrameskip-v4`` and ``ALE/...-v5`` ids, and drawn
   from 2 to 4 at random each step for ``-v0`` ids (as gymnasium registers
   them); sticky actions are the id's own (25% on ``-v0`` and ``-v5`` ids,
   none on ``NoFrameskip-v4``).
2. Grayscale, then max-pool: the last two frames of the k are read as the
   ALE's own grayscale screen (the luminance of its NTSC palette), and their
   pixel-wise maximum is kept, since Atari sprites flicker (some are drawn
   only every other frame).
3. Resize to 84x84 with OpenCV's area interpolation.
4. Stack: the state is the m most recent frames, a uint8 array (84, 84, m),
   newest last (channels-last, as Keras convolutions expect). A new
   episode's stack holds its first frame m times.

Why grayscale before the max: training runs on ale-py's ``AtariVectorEnv``
(``VectorAtariEnv`` below), which emulates and preprocesses in C++ outside
Python's GIL, in this order; gymnasium's ``AtariPreprocessing`` does the
same. The Nature paper's words (max of the colour frames, then luminance)
give other grey levels wherever two frames differ in colour at a pixel (up to
37 of 255 on MsPacman). ``AtariWrapper``, which ``--testing``, video and
rendering use, follows the C++ step for step, so both paths give the same
states bit for bit, and a checkpoint is tested on the inputs it trained on.

Where an episode ends, both paths follow the same rules:

* Game over mid-repeat: the frame that ended the game is not read, so the
  newest frame of that terminal state is pooled from frames read before
  (ale-py's C++ does this). Nothing bootstraps from a terminal state.
* Time limit (``max_episode_frames``, 108,000 frames = 30 minutes by
  default, counted from after the no-ops): the step that reaches it is
  played whole and ends the episode as truncated, on a fresh frame, since a
  truncated episode bootstraps from its last state.
* No-op starts (``noop_max``): 0 to noop_max frames of action 0 after each
  reset, drawn uniformly; a game that ends during them starts again. They
  vary the otherwise identical starts of ALE games; other envs (Catch, whose
  ball starts in a random column) start as their own reset makes them.

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
NATURE_FRAME_SKIP = 4
MAX_EPISODE_FRAMES = 108_000  # 30 minutes of play at 60 frames/s, as DQN's training episodes
# AtariVectorEnv's own frame cap, set out of reach: VectorAtariEnv applies the
# cap itself, at the end of a step, as AtariWrapper does (the C++ cuts mid-repeat).
_VECTOR_ENV_NO_CAP = 2**30


class UnknownGameError(ValueError):
    """A game id that gymnasium does not know; the message names the closest ids."""


class AtariWrapper(gym.Wrapper):
    """Frame skip, grayscale max-pool, 84x84 resize and an m-frame stack, as described above.

    Args:
        env: an ALE env made with ``frameskip=1`` and ``obs_type="grayscale"``
            (``make_env`` makes one from any ALE id), or another env whose
            observations are RGB frames (the test game Catch).
        agent_history_length: m, the number of frames in a state.
        frame_skip: frames per agent step: an int, or a ``(low, high)`` range
            to draw from each step (high excluded, as ALE ids write it).
            ``None``: 4 on an ALE env, 1 on any other.
        noop_max: each reset of an ALE env plays 0 to noop_max no-op frames (action 0).
        max_episode_frames: an episode is truncated at the end of the step
            that brings its frames (after the no-ops) to this many.
    """

    def __init__(self, env, agent_history_length=4, frame_skip=None, noop_max=0, max_episode_frames=MAX_EPISODE_FRAMES):
        super().__init__(env)
        if agent_history_length < 1:
            raise ValueError(f"agent_history_length must be at least 1, got {agent_history_length}")
        if noop_max < 0:
            raise ValueError(f"noop_max must be 0 or more, got {noop_max}")
        if max_episode_frames < 1:
            raise ValueError(f"max_episode_frames must be at least 1, got {max_episode_frames}")
        ale_env = _is_ale_env(env)
        if ale_env and getattr(env.unwrapped, "_frameskip", None) != 1:
            raise ValueError("the ALE env must skip no frames itself (frameskip=1): AtariWrapper skips them")
        if ale_env and getattr(env.unwrapped, "_obs_type", None) != "grayscale":
            raise ValueError('the ALE env must give grayscale frames (obs_type="grayscale"): use make_env')
        if frame_skip is None:
            frame_skip = NATURE_FRAME_SKIP if ale_env else 1
        low, high = frame_skip if isinstance(frame_skip, tuple) else (frame_skip, frame_skip + 1)
        if not 1 <= low < high:
            raise ValueError(f"frame_skip must be at least 1, got {frame_skip}")
        self.agent_history_length = agent_history_length
        self.frame_skip = frame_skip
        self.noop_max = noop_max if ale_env else 0
        self.max_episode_frames = max_episode_frames
        self.observation_space = gym.spaces.Box(
            0, 255, (FRAME_SIZE, FRAME_SIZE, agent_history_length), dtype=np.uint8
        )
        self._skip_range = (low, high)
        self._rng = np.random.default_rng()  # frame skips and no-ops; seeded by reset(seed=...)
        self._stack = np.zeros(self.observation_space.shape, dtype=np.uint8)
        self._stack_bytes = self._stack.reshape(-1)  # the same memory, pixel after pixel, m frames each
        self._pool = None  # the last two screens read, newest first, as ale-py's C++ keeps them
        self.noop_frames = 0  # no-op frames that started the episode
        self.episode_frames = 0  # frames played since them

    def reset(self, *, seed=None, options=None):
        if seed is not None:
            self._rng = np.random.default_rng(seed)
        frame, info = self.env.reset(seed=seed, options=options)
        self.noop_frames = 0
        for _ in range(self._rng.integers(0, self.noop_max + 1)):
            frame, _, terminated, truncated, info = self.env.step(0)
            self.noop_frames += 1
            if terminated or truncated:
                frame, info = self.env.reset()
                self.noop_frames = 0
        screen = grayscale(frame)
        self._pool = np.zeros((2, *screen.shape), np.uint8)
        self._pool[0] = screen
        self.episode_frames = 0
        self._stack[...] = resize(screen)[..., None]
        return self._stack.copy(), info

    def step(self, action):
        total_reward = 0.0
        skip = int(self._rng.integers(*self._skip_range))
        for frames_left in range(skip, 0, -1):
            frame, reward, terminated, truncated, info = self.env.step(action)
            total_reward += reward
            self.episode_frames += 1
            if terminated or truncated:
                break  # the frame that ended the game is not read (see the module docstring)
            if frames_left <= 2:
                self._pool[frames_left - 1] = grayscale(frame)
        truncated = truncated or (not terminated and self.episode_frames >= self.max_episode_frames)
        np.maximum(self._pool[0], self._pool[1], out=self._pool[0])
        # Each pixel's m frames move down one slot: the whole buffer moves one byte, a contiguous copy
        # (a slot-wise copy steps 3 bytes at a time: 70 us a step), and the last slot, which took the
        # next pixel's oldest frame, takes the new one.
        self._stack_bytes[:-1] = self._stack_bytes[1:]
        self._stack[..., -1] = resize(self._pool[0])
        return self._stack.copy(), total_reward, terminated, truncated, info


def grayscale(frame):
    """An ALE grayscale screen as it is; an RGB frame (a non-ALE env's) to luminance."""
    return frame if frame.ndim == 2 else cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)


def resize(screen):
    """A grayscale screen (210, 160) to (84, 84), with the interpolation ale-py's C++ uses."""
    return cv2.resize(screen, (FRAME_SIZE, FRAME_SIZE), interpolation=cv2.INTER_AREA)


def _is_ale_env(env):
    return isinstance(env.unwrapped, ale_py.AtariEnv)


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
    game,
    agent_history_length=4,
    noop_max=0,
    max_episode_frames=MAX_EPISODE_FRAMES,
    render_mode=None,
    video_dir=None,
    repeat_action_probability=None,
):
    """Make ``game`` with gymnasium and wrap it in AtariWrapper.

    An ALE id is made one frame per step, in grayscale, without ALE's own
    frame cap: AtariWrapper skips frames, pools and caps as the id's
    settings say. ``video_dir`` records every episode there as MP4, in
    colour, at full resolution and every emulator frame.
    ``repeat_action_probability`` overrides the id's sticky actions.
    """
    check_game(game)
    kwargs = {"render_mode": "rgb_array" if video_dir else render_mode}
    frame_skip = None
    if _is_ale(game):
        frame_skip = ale_frame_skip(game)
        kwargs.update(frameskip=1, obs_type="grayscale", max_num_frames_per_episode=None)
        if repeat_action_probability is not None:
            kwargs["repeat_action_probability"] = repeat_action_probability
    env = gym.make(game, **kwargs)
    if video_dir:
        # Beneath AtariWrapper, so the video shows the game, not the agent's 84x84 view.
        env = gym.wrappers.RecordVideo(env, video_dir, episode_trigger=lambda _: True, disable_logger=True)
    return AtariWrapper(env, agent_history_length, frame_skip, noop_max, max_episode_frames)


def ale_frame_skip(game):
    """Frames per agent step for an ALE id: 4 where the id skips none, else the id's own (int or range)."""
    skip = gym.spec(game).kwargs.get("frameskip", NATURE_FRAME_SKIP)
    return NATURE_FRAME_SKIP if skip == 1 else skip


def frames_per_step(env):
    """Emulator frames behind one agent step of a wrapped env (the mean, for random skips)."""
    if isinstance(env, VectorAtariEnv):
        return env.frameskip
    skip = env.frame_skip
    if isinstance(skip, tuple):  # -v0 ids draw from range(low, high)
        skip = (skip[0] + skip[1] - 1) / 2
    return skip


# -- The fast path: one emulator stepped in C++, outside Python's GIL ---------


class VectorAtariEnv:
    """One ALE game behind ale-py's AtariVectorEnv, with AtariWrapper's interface and states.

    A gymnasium ALE env holds Python's GIL while it emulates, so threads that
    step such envs take turns. AtariVectorEnv emulates, converts to
    grayscale, max-pools, resizes and stacks frames in C++ with the GIL
    released, so each actor-learner thread's emulator runs beside the
    others. For the same seed and actions its states equal AtariWrapper's
    exactly (the tests compare every pixel of every step on several games).

    Only ids with a fixed frame skip qualify: ``NoFrameskip-v4`` ids (4
    frames per step) and ``ALE/...-v5`` ids (4 frames, sticky actions). The
    ``-v0`` ids draw a random skip per step, which this path cannot play.
    """

    def __init__(
        self,
        game,
        agent_history_length=4,
        noop_max=0,
        max_episode_frames=MAX_EPISODE_FRAMES,
        repeat_action_probability=None,
    ):
        settings = vector_env_settings(game)
        if settings is None:
            raise ValueError(f"{game!r} has no fixed frame skip; use AtariWrapper (make_env)")
        if noop_max < 0:
            raise ValueError(f"noop_max must be 0 or more, got {noop_max}")
        from ale_py.vector_env import AtariVectorEnv

        if repeat_action_probability is None:
            repeat_action_probability = settings["repeat_action_probability"]
        self.frameskip = settings["frameskip"]
        self.max_episode_frames = max_episode_frames
        self._env = AtariVectorEnv(
            settings["game"],
            num_envs=1,
            num_threads=1,  # one emulator per actor-learner thread
            frameskip=self.frameskip,
            repeat_action_probability=repeat_action_probability,
            stack_num=agent_history_length,
            img_height=FRAME_SIZE,
            img_width=FRAME_SIZE,
            max_num_frames_per_episode=_VECTOR_ENV_NO_CAP,
            # The C++ draws 0 to noop_max - 1 no-ops; AtariWrapper 0 to noop_max.
            noop_max=noop_max + 1,
            # AtariWrapper's behaviour: real rewards, no automatic FIRE, lives
            # reported in info (the learner decides what a lost life means).
            reward_clipping=False,
            use_fire_reset=False,
            episodic_life=False,
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
        self._episode_frames = 0

    def reset(self, *, seed=None, options=None):
        frames, info = self._env.reset(seed=seed, options=options)
        self._first_frame = frames[0, -1].copy()
        self._padding = frames.shape[1] - 1
        self._episode_frames = 0
        return self._state(frames), _first(info)

    def step(self, action):
        frames, reward, terminated, truncated, info = self._env.step(np.array([action]))
        self._padding = max(self._padding - 1, 0)
        self._episode_frames += self.frameskip
        terminated = bool(terminated[0])
        truncated = not terminated and self._episode_frames >= self.max_episode_frames
        return self._state(frames), float(reward[0]), terminated, truncated, _first(info)

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
    skip = ale_frame_skip(game)
    if isinstance(skip, tuple):
        return None
    kwargs = gym.spec(game).kwargs
    return {
        "game": kwargs["game"],
        "frameskip": skip,
        "repeat_action_probability": kwargs.get("repeat_action_probability", 0.25),
    }


def _is_ale(game):
    return "ale_py" in str(gym.spec(game).entry_point)


def _first(info):
    return {key: value[0] for key, value in info.items()}
