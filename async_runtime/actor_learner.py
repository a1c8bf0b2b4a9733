"""One actor-learner thread's own things: emulator, theta', final epsilon, batch buffers.

The algorithm scripts drive it (act, step, learn); it keeps the
bookkeeping out of their way.
"""

import dataclasses

import numpy as np

import atari_wrapper
from async_runtime.schedules import draw_final_epsilon, epsilon_at, epsilon_greedy
from async_runtime.weights import Weights, aligned_zeros, tensor_view
from build_model import FRAME_SIZE, policy_and_value_numpy, q_values_numpy


def thread_rng(seed, index):
    """Thread ``index``'s own random stream; its first draw is the thread's final epsilon."""
    return np.random.default_rng([seed, index])


def final_epsilons(args):
    """Each thread's final epsilon, drawn as its ActorLearner draws it, for the start-up line."""
    return [
        draw_final_epsilon(thread_rng(args.seed, index), args.final_epsilon_choices,
                           args.final_epsilon_choice_probabilities)
        for index in range(args.num_actor_threads)
    ]


@dataclasses.dataclass
class EpisodeRecord:
    """One finished game, as the logs report it."""

    T: int
    score: float  # unclipped game score, over all its lives
    length: int  # agent steps
    mean_value: float  # of the states acted in: max_a Q(s, a), or A3C's V(s)
    epsilon: float | None  # None for a learner that samples its policy


class ActorLearner:
    """One thread of the paper's actor-learners; ``max_segment_steps`` sizes its batch buffers."""

    def __init__(self, index, shared, max_segment_steps, render=False):
        args = shared.args
        self.index = index
        self.shared = shared
        self.rng = thread_rng(args.seed, index)
        if shared.model.explores_epsilon_greedily:
            self.final_epsilon = draw_final_epsilon(
                self.rng, args.final_epsilon_choices, args.final_epsilon_choice_probabilities
            )
        self.episodic_life = args.episodic_life
        self.env = make_training_env(args, render=render)
        self.frames_per_step = atari_wrapper.frames_per_step(self.env)
        self.local = Weights.copy_of(shared.theta.arrays)  # theta'
        # Fixed-size batch buffers: one compiled shape whatever the segment length.
        state_shape = (FRAME_SIZE, FRAME_SIZE, args.agent_history_length)
        self.states = aligned_zeros((max_segment_steps, *state_shape), np.uint8)
        self.action_masks = aligned_zeros((max_segment_steps, shared.num_actions))  # one-hot rows
        self.targets = aligned_zeros((max_segment_steps,))
        self.next_states = aligned_zeros(self.states.shape, np.uint8)
        # The same buffers as tensors: filled in place, passed without a copy.
        self.batch = [tensor_view(array) for array in (self.states, self.action_masks, self.targets)]
        self.next_states_tensor = tensor_view(self.next_states)
        ops = shared.ops
        self._gradient = ops.bind(ops.gradient, self.local.tensors, *self.batch)
        if shared.target is not None:
            self._q_values = ops.bind(ops.q_values, self.local.tensors, self.next_states_tensor)
        self._losses = shared.losses[index]  # [loss sum, states learned from]: this thread writes, the driver reads
        self._episode_seed = args.seed * 1000 + index
        self._score, self._length, self._value_sum = 0.0, 0, 0.0  # the running game's
        self._state, self._lives, self._game_over = None, 0, True

    # -- acting ---------------------------------------------------------------

    def epsilon(self):
        if not self.shared.model.explores_epsilon_greedily:
            return None
        return epsilon_at(self.shared.T.value, self.final_epsilon, self.shared.args.anneal_epsilon_timesteps)

    def act(self, state):
        """Epsilon-greedy action under theta' (Q-network)."""
        q = q_values_numpy(self.local.arrays, state)
        self._value_sum += float(q.max())
        return epsilon_greedy(self.rng, self.epsilon(), self.shared.num_actions, q.argmax)

    def sample_action(self, state):
        """An action drawn from the policy pi(. | s; theta') (actor-critic network)."""
        probabilities, value = policy_and_value_numpy(self.local.arrays, state)
        self._value_sum += value
        return int(self.rng.choice(self.shared.num_actions, p=probabilities))

    def value(self, state):
        """V(s; theta') (actor-critic network)."""
        return policy_and_value_numpy(self.local.arrays, state)[1]

    @property
    def current_state(self):
        """The state the thread is acting in (None before its first game), for the driver's health check."""
        return self._state

    def reset(self):
        """Start the next episode: a new game, or after a lost life (--episodic_life) the same game going on."""
        if not self._game_over:
            return self._state
        seed, self._episode_seed = self._episode_seed, None  # seed the first game only
        self._state, info = self.env.reset(seed=seed)
        self._lives, self._game_over = info.get("lives", 0), False
        self._score, self._length, self._value_sum = 0.0, 0, 0.0
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
                    self.shared.T.value, self._score, self._length, self._value_sum / self._length, self.epsilon()
                )
            )
        terminated = game_over or (self.episodic_life and life_lost)
        return state, reward, terminated, truncated

    # -- learning -------------------------------------------------------------

    def sync_local(self):
        """theta' <- theta."""
        self.local.assign(self.shared.theta.arrays)

    def target_q_values(self, states):
        """Q(s, a; theta-minus), one row per state; batches are padded to one compiled size."""
        count = len(states)
        if count == 1:  # a single state (the n-step bootstrap, a one-step segment): NumPy, as for acting
            return self.shared.target.read(lambda target: q_values_numpy(target.arrays, states[0])[None])
        self.next_states[:count] = states
        q_values = self.shared.target.read(lambda target: self._q_values(*target.tensors, self.next_states_tensor)[0])
        return q_values.numpy()[:count]

    def max_target_q(self, states):
        """max_a Q(s, a; theta-minus) per state."""
        return self.target_q_values(states).max(axis=1)

    def learn(self, states, actions, targets):
        """One asynchronous update: the gradient of the model's loss at theta' (for the Q learners
        sum_i (y_i - Q(s_i, a_i; theta'))^2), clipped, applied to theta by shared RMSProp; then theta' <- theta.

        The algorithm syncs right after each update (the next segment's
        first step): the update writes theta' as it writes theta.
        """
        count = len(actions)
        self.states[:count] = states
        self.action_masks[:] = 0.0
        self.action_masks[np.arange(count), actions] = 1.0
        self.targets[:count] = targets
        loss, *gradients, clip_factor = self._gradient(*self.local.tensors, *self.batch)
        self.shared.optimizer.apply(gradients, float(clip_factor), self.shared.learning_rate(), self.local.arrays)
        self._losses += (float(loss), count)

    @property
    def loss_sum(self):
        return float(self._losses[0])

    @property
    def loss_count(self):
        return int(self._losses[1])

    def warm_up(self):
        """Trace and compile every function once, before the clocks run, changing nothing shared."""
        self.sync_local()
        if self.shared.target is not None:
            self.max_target_q(self.next_states)
        _, *gradients, _ = self._gradient(*self.local.tensors, *self.batch)
        self.shared.optimizer.compile(gradients)


def make_training_env(args, render=False):
    """The emulator of one training thread: ale-py's vector env where it can run the game, else AtariWrapper."""
    use_vector = args.env_backend == "ale_vector" or (
        args.env_backend == "auto" and not render and atari_wrapper.vector_env_settings(args.game) is not None
    )
    if use_vector:
        return atari_wrapper.VectorAtariEnv(args.game, args.agent_history_length, noop_max=args.noop_max)
    return atari_wrapper.make_env(
        args.game, args.agent_history_length, noop_max=args.noop_max, render_mode="human" if render else None
    )


def num_actions_of(args):
    env = atari_wrapper.make_env(args.game, args.agent_history_length)
    count = int(env.action_space.n)
    env.close()
    return count


def clip_reward(reward):
    """Rewards are clipped to [-1, 1] for learning; scores stay unclipped."""
    return max(-1.0, min(1.0, reward))
