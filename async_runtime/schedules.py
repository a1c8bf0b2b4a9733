"""The paper's schedules and exploration rule. T counts agent steps, summed over all threads."""


def epsilon_at(T, final_epsilon, anneal_steps):
    """Falls linearly from 1 at T = 0 to final_epsilon at T = anneal_steps, then stays."""
    progress = min(T / anneal_steps, 1.0)
    return 1.0 + progress * (final_epsilon - 1.0)


def learning_rate_at(T, args):
    """--learning_rate, falling linearly to 0 at T_max with --anneal_learning_rate."""
    if not args.anneal_learning_rate:
        return args.learning_rate
    return args.learning_rate * max(0.0, 1.0 - T / args.T_max)


def draw_final_epsilon(rng, choices, probabilities):
    """Each thread's final exploration rate, drawn once (the paper's 0.1, 0.01, 0.5)."""
    return float(rng.choice(choices, p=probabilities))


def crossed(old_T, new_T, interval):
    """True when T went past a multiple of interval between old_T and new_T."""
    return old_T // interval != new_T // interval


def epsilon_greedy(rng, epsilon, num_actions, greedy_action):
    """A uniformly random action with probability epsilon, else ``greedy_action()``."""
    if rng.random() < epsilon:
        return int(rng.integers(num_actions))
    return int(greedy_action())
