"""What all actor-learners share: theta, theta-minus, the RMSProp statistics, T.

All of it lives in one SharedBlock: the threads of one process share it as
they share any memory, and with --num_processes the other processes map
the same block (async_runtime.processes).
"""

import numpy as np

from async_runtime.compiled import CompiledOps
from async_runtime.memory import SharedBlock
from async_runtime.models import Q_NETWORK
from async_runtime.rmsprop import SharedRMSProp
from async_runtime.schedules import learning_rate_at
from async_runtime.weights import Weights


class StepCounter:
    """The global step counter T, added to under a lock so no actor-learner's steps are lost."""

    def __init__(self, count, lock):
        self._count = count  # a one-element int64 array in the shared block
        self._lock = lock

    @property
    def value(self):
        return int(self._count[0])

    def add(self, steps):
        """Add steps; return (T before, T after) so callers can spot crossed boundaries."""
        with self._lock:
            old = int(self._count[0])
            self._count[0] = old + steps
            return old, old + steps

    def reset(self, value):
        """Set T, as a restored checkpoint or a cluster exchange says; while threads run, under their lock."""
        self._count[0] = value


class TargetNetwork:
    """theta-minus, written by a sync now and then while every actor-learner reads it.

    Two copies in turn: a sync writes the one not in use and then publishes
    it. A reader takes the published copy and, after its computation,
    checks that no later sync began rewriting that copy meanwhile; if one
    did (two syncs during one forward pass, tens of thousands of steps
    apart), it computes again. So every result comes from one whole
    theta-minus, in any process, and readers never wait (a seqlock). Its
    ordering relies on x86-64's: stores are seen in the order made, loads
    are made in program order.
    """

    def __init__(self, copies, versions, lock):
        self._copies = copies  # two Weights
        self._versions = versions  # int64 [syncs begun, syncs published]
        self._lock = lock  # one sync at a time

    def assign(self, values):
        with self._lock:
            begun = int(self._versions[0]) + 1
            self._versions[0] = begun
            self._copies[begun % 2].assign(values)
            self._versions[1] = begun

    def read(self, compute):
        """``compute(weights)`` on one whole theta-minus; its result."""
        while True:
            published = int(self._versions[1])
            result = compute(self._copies[published % 2])
            if self._versions[0] <= published + 1:
                return result

    @property
    def version(self):
        """How many syncs have been published: it changes at each."""
        return int(self._versions[1])

    @property
    def arrays(self):
        """A copy of theta-minus now, as arrays."""
        return self.read(Weights.copy)


class SharedState:
    """theta (the global network), theta-minus (if ``model`` has a target network), shared RMSProp, T.

    ``network`` gives the weights their structure: TensorFlow runs it on
    explicit weights only (an actor-learner's theta', or theta-minus), never
    on its own variables, which just seed theta.

    With ``block`` None, a new state: a new block (shared across processes
    if --num_processes is above 1, without --ray_address), theta as the network initialised it.
    With a block, a state on that block as its creator left it: how other
    processes join a run.
    """

    def __init__(self, args, num_actions, model=Q_NETWORK, block=None):
        self.args = args
        self.num_actions = num_actions
        self.model = model
        self.network = model.build_network(num_actions, args.agent_history_length)
        initial_theta = [variable.numpy() for variable in self.network.trainable_variables]
        created = block is None
        if created:
            other_processes_map_it = args.num_processes > 1 and not args.ray_address  # Ray's replicas do not
            block = SharedBlock(layout(initial_theta, model, args.num_actor_threads), other_processes_map_it)
        self.block = block
        self.theta = Weights(block.group("theta"))
        self.optimizer = SharedRMSProp(self.theta.arrays, block.group("mean_squares"), args.decay_rate_RMSProp, args.epsilon_RMSProp)
        self.ops = CompiledOps(self.network, args.clip_norm, model.loss)
        self.T = StepCounter(block.arrays["T"], block.lock)
        self.losses = block.arrays["losses"]  # per actor-learner: sum of losses, states learned from
        self.stop_event = block.stop_event
        self.episodes = block.episodes  # EpisodeRecord, from the actor-learners to the driver
        self.failures = block.failures  # (actor-learner index, traceback), likewise
        self.target = None
        if model.target_network:
            copies = [Weights(block.group(f"target_{copy}")) for copy in (0, 1)]
            self.target = TargetNetwork(copies, block.arrays["target_versions"], block.lock)
        if created:
            self.theta.assign(initial_theta)
            if self.target is not None:
                self.update_target()

    def update_target(self):
        """theta-minus <- theta."""
        self.target.assign(self.theta.arrays)

    def should_stop(self):
        return self.stop_event.is_set() or self.T.value >= self.args.T_max

    def learning_rate(self):
        return learning_rate_at(self.T.value, self.args)


def layout(theta, model, num_actor_threads):
    """The shared block's arrays: (name, shape, dtype) each."""
    weights = [(f"theta/{i}", np.shape(value), np.float32) for i, value in enumerate(theta)]
    weights += [(f"mean_squares/{i}", np.shape(value), np.float32) for i, value in enumerate(theta)]
    if model.target_network:
        for copy in (0, 1):
            weights += [(f"target_{copy}/{i}", np.shape(value), np.float32) for i, value in enumerate(theta)]
    counters = [
        ("T", (1,), np.int64),
        ("losses", (num_actor_threads, 2), np.float64),
        ("processes_ready", (1,), np.int64),  # worker processes ready to start their threads
    ]
    if model.target_network:
        counters.append(("target_versions", (2,), np.int64))
    return weights + counters
