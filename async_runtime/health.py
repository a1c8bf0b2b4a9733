"""Whether the network still lives: torso units that never fire, outputs that ignore the state.

A ReLU unit whose input is negative on every state gets no gradient from
them; it fires again only if the layers before it change. Too large a step
(a learning rate too high for RMSProp's epsilon) can kill most of the torso
within minutes: the network then gives
the same outputs whatever it sees (A3C's policy uniform, its value flat)
and the run goes on for hours learning nothing. Measured on recent states of
the game being played, each summary interval: the share of each layer's
units (a convolution's: its channels) that fire on none of them, and how
far the outputs spread over them.
"""

import numpy as np

from build_model import torso_activations_numpy

LAYERS = ("conv1", "conv2", "hidden")
SAMPLE_STATES = 64  # the most recent states kept: each of this process's threads is sampled twice a second
MIN_STATES = 16  # fewer say nothing about the state-dependence of the outputs
# Share of dead hidden units that earns a warning. Runs have stayed there (A3C on Breakout at learning
# rate 7e-4: 96% and no learning at 15 minutes; two earlier runs at 97% and 99%) and come back from it
# (A3C on Pong at 3e-4: 96% at T 230,000, 56% by T 700,000, then learning), so it is a warning to watch.
DEAD_HIDDEN = 0.95
RECOVERY_STEPS = 500_000  # the Pong run above came back within about this many steps
FLAT = 1e-6  # outputs that move less than this over the states ignore them
CHECKS_BEFORE_WARNING = 3  # summary intervals in a row: a single bad sample is not a verdict


class StateSample:
    """The last SAMPLE_STATES states seen, distinct ones only, in a ring."""

    def __init__(self):
        self.states = []
        self._next = 0  # where the next state goes once the ring is full: the oldest
        self._latest = None

    def add(self, state):
        if state is None or (self._latest is not None and np.array_equal(state, self._latest)):
            return
        state = np.array(state, copy=True)  # the emulator may write its buffer in place
        if len(self.states) < SAMPLE_STATES:
            self.states.append(state)
        else:
            self.states[self._next] = state
            self._next = (self._next + 1) % SAMPLE_STATES
        self._latest = state


def dead_fractions(weights, states):
    """Per torso layer, the share of its units (channels) that fire on none of ``states``."""
    alive = None
    for state in states:
        layers = torso_activations_numpy(weights, state)
        fired = [(layer.reshape(-1, layer.shape[-1]) > 0).any(axis=0) for layer in layers]
        alive = fired if alive is None else [a | f for a, f in zip(alive, fired)]
    return [float(1.0 - layer.mean()) for layer in alive]


def output_spread(outputs_numpy, weights, states):
    """The largest range, over ``states``, of any output: a Q-value, or A3C's value or an action's probability."""
    outputs = np.array([outputs_numpy(weights, state) for state in states])
    return float((outputs.max(axis=0) - outputs.min(axis=0)).max())


class HealthCheck:
    """Measures the network on the sampled states; says, once per kind, and why, when the run looks dead."""

    def __init__(self, outputs_numpy, learning_rate, epsilon_RMSProp):
        self.outputs_numpy = outputs_numpy
        self.learning_rate = learning_rate
        self.epsilon_RMSProp = epsilon_RMSProp
        self.sample = StateSample()
        self._kind, self._checks_of_kind = None, 0
        self.said = set()  # the kinds of warning given: each is given once

    def measure(self, weights):
        """({layer: dead share}, output spread), or None while too few states are sampled."""
        states = self.sample.states
        if len(states) < MIN_STATES:
            return None
        fractions = dict(zip(LAYERS, dead_fractions(weights, states)))
        return fractions, output_spread(self.outputs_numpy, weights, states)

    def warning(self, fractions, spread):
        """The warning to print once the run has looked dead CHECKS_BEFORE_WARNING checks in a row.

        Outputs that ignore the state are a dead network; a hidden layer mostly
        silent is one that may come back. Each kind is said once, after as many checks in a row.
        """
        kind = "flat" if spread <= FLAT else "silent" if fractions["hidden"] >= DEAD_HIDDEN else None
        self._checks_of_kind = self._checks_of_kind + 1 if kind == self._kind else 1
        self._kind = kind
        if kind is None or kind in self.said or self._checks_of_kind < CHECKS_BEFORE_WARNING:
            return None
        self.said.add(kind)
        cause = (
            f"steps too large for these units (--learning_rate {self.learning_rate:g} with "
            f"--epsilon_RMSProp {self.epsilon_RMSProp:g})"
        )
        states = f"the last {len(self.sample.states)} states played"
        if kind == "flat":
            return (
                f"warning: the network is dead: its outputs are the same on each of {states}, so it learns "
                f"nothing more. Likely cause: {cause}: stop the run and start again with a "
                "smaller --learning_rate"
            )
        return (
            f"warning: the network may be dying: {fractions['hidden']:.0%} of the hidden layer's units never fire "
            f"on {states}. Runs have come back from this within {RECOVERY_STEPS:,} steps, and runs have not: "
            f"if health/dead_units_hidden in TensorBoard stays above {DEAD_HIDDEN:.0%} past then, stop the run "
            f"and start again with a smaller --learning_rate. Likely cause: {cause}"
        )
