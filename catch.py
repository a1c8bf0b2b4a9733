"""Catch: a tiny pixel game for testing that the learners learn, in minutes.

A ball falls from a random column at the top of a grid, one row per step; a
paddle on the bottom row stays, moves left or moves right. The episode ends
when the ball reaches the bottom row: +1 if the paddle is under it, -1 if not.
Frames are RGB (210, 160, 3), the size of an Atari screen, so the game goes
through the same AtariWrapper and network as a real game:

    >>> env = atari_wrapper.make_env("Catch-v0")

Scores per episode: the best possible is +1 (every ball can be reached: the
paddle moves one column per step and the ball falls through ROWS - 1 steps);
a uniformly random policy scores about -0.60 (measured over 100,000
episodes, see ``random_policy_score``).
"""

import gymnasium as gym
import numpy as np

ROWS, COLUMNS = 10, 5
SCREEN_HEIGHT, SCREEN_WIDTH = 210, 160
CELL_HEIGHT, CELL_WIDTH = SCREEN_HEIGHT // ROWS, SCREEN_WIDTH // COLUMNS
BEST_SCORE = 1.0
RANDOM_POLICY_SCORE = -0.60
ACTION_MOVES = (0, -1, 1)  # stay, left, right: action 0 is a no-op, as in the ALE


class CatchEnv(gym.Env):
    metadata = {"render_modes": ["rgb_array"], "render_fps": 15}

    def __init__(self, render_mode=None):
        self.render_mode = render_mode
        self.action_space = gym.spaces.Discrete(len(ACTION_MOVES))
        self.observation_space = gym.spaces.Box(0, 255, (SCREEN_HEIGHT, SCREEN_WIDTH, 3), dtype=np.uint8)
        self._ball_row = self._ball_column = self._paddle_column = 0

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self._ball_row = 0
        self._ball_column = int(self.np_random.integers(COLUMNS))
        self._paddle_column = COLUMNS // 2
        return self._frame(), {}

    def step(self, action):
        if not self.action_space.contains(action):
            raise ValueError(f"invalid action {action!r}; Catch takes 0 (stay), 1 (left) or 2 (right)")
        self._paddle_column = int(np.clip(self._paddle_column + ACTION_MOVES[action], 0, COLUMNS - 1))
        self._ball_row += 1
        terminated = self._ball_row == ROWS - 1
        reward = 0.0
        if terminated:
            reward = 1.0 if self._paddle_column == self._ball_column else -1.0
        return self._frame(), reward, terminated, False, {}

    def render(self):
        return self._frame()

    def _frame(self):
        frame = np.zeros(self.observation_space.shape, dtype=np.uint8)
        frame[_cell(self._ball_row, self._ball_column)] = (255, 255, 255)
        frame[_cell(ROWS - 1, self._paddle_column)] = (0, 200, 255)
        return frame


def _cell(row, column):
    return (
        slice(row * CELL_HEIGHT, (row + 1) * CELL_HEIGHT),
        slice(column * CELL_WIDTH, (column + 1) * CELL_WIDTH),
    )


def random_policy_score(episodes=100_000, seed=0):
    """Mean score of uniformly random actions (about RANDOM_POLICY_SCORE)."""
    rng = np.random.default_rng(seed)
    env = CatchEnv()
    total = 0.0
    for episode in range(episodes):
        env.reset(seed=int(rng.integers(2**31)))
        terminated = False
        while not terminated:
            _, reward, terminated, _, _ = env.step(int(rng.integers(len(ACTION_MOVES))))
        total += reward
    return total / episodes


gym.register(id="Catch-v0", entry_point=CatchEnv)
