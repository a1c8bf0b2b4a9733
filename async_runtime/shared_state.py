"""What all actor-learner threads share: theta, theta-minus, the RMSProp statistics, T."""

import queue
import threading

from async_runtime.compiled import CompiledOps
from async_runtime.models import Q_NETWORK
from async_runtime.rmsprop import SharedRMSProp
from async_runtime.schedules import learning_rate_at
from async_runtime.weights import Weights


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
    """theta (the global network), theta-minus (the target network, if ``model`` has one), shared RMSProp, T.

    ``network`` gives the weights their structure: TensorFlow runs it on
    explicit weights only (a thread's theta', or theta-minus), never on its
    own variables, which just seed theta.
    """

    def __init__(self, args, num_actions, model=Q_NETWORK):
        self.args = args
        self.num_actions = num_actions
        self.model = model
        self.network = model.build_network(num_actions, args.agent_history_length)
        self.theta = Weights([variable.numpy() for variable in self.network.trainable_variables])
        self.optimizer = SharedRMSProp(self.theta.arrays, args.decay_rate_RMSProp, args.epsilon_RMSProp)
        self.ops = CompiledOps(self.network, args.clip_norm, model.loss)
        self.T = StepCounter()
        self.stop_event = threading.Event()
        self.episodes = queue.SimpleQueue()  # EpisodeRecord, from the threads to the driver
        self.target = None
        if model.target_network:
            self.update_target()

    def update_target(self):
        """theta-minus <- theta.

        A new snapshot rather than a copy in place: a thread that is
        bootstrapping from the old one reads it whole.
        """
        self.target = Weights(self.theta.arrays)

    def should_stop(self):
        return self.stop_event.is_set() or self.T.value >= self.args.T_max

    def learning_rate(self):
        return learning_rate_at(self.T.value, self.args)
