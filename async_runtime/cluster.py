"""Actor-learners on a Ray cluster (--ray_address): the processes beyond this one, on other machines.

Processes of one machine map one block of memory (async_runtime.processes);
machines cannot. With --ray_address, this process keeps the run as before
(theta, the RMSProp statistics, T and theta-minus; logs, checkpoints,
signals) and runs the first group of threads. Each other group runs in a
Ray actor, wherever the cluster has room, on a replica: a theta and RMSProp
statistics of its own that its threads update without locks, as the
threads of one process share theirs.

Every --ray_sync_interval seconds this process exchanges with each replica
what changed, as Downpour SGD's workers do with their parameter server
(Dean et al. 2012), this process being the server: the replica sends the
change its threads made to its theta since the last exchange (added to
theta here) and its steps (added to T); it gets back theta, onto which it
keeps its own changes made meanwhile, T, and theta-minus when a sync has
changed it. That is 2 x 2.7 MB per replica per exchange. Sending theta
on every update instead, as threads in shared memory in effect do, would
take some 650 MB/s per replica at today's update rate.

How stale: a replica's theta holds every update made in this process up to
its last exchange, every update of its own threads, and the other replicas'
updates up to their exchange before that. So the others' updates reach
a thread within two intervals plus the transfers; its own at once.
Each replica keeps its own RMSProp statistics (from this process's at the
start): they change slowly, and sending them would double the traffic.
T crosses target-sync boundaries here, where theta-minus is synced from
theta; replicas get the new theta-minus at their next exchange.

A replica that dies (its process killed, its machine lost) costs its share,
not the run: a replacement starts wherever the cluster has room, from the
run's state as it is then (theta, RMSProp statistics, theta-minus, T), and
joins the exchanges once it has started; the run loses the dead replica's
steps since its last exchange. --ray_max_restarts bounds the replacements;
past it, or when none can start within START_TIMEOUT_SECONDS, a death stops
the run, saved, for the command to resume.
"""

import dataclasses
import logging
import os
import socket
import threading
import time
import traceback

import numpy as np
import ray
import ray.exceptions

from async_runtime.actor_learner import ActorLearner
from async_runtime.errors import UsageError
from async_runtime.memory import drain
from async_runtime.processes import configure_threads, process_name, start_threads
from async_runtime.schedules import crossed
from async_runtime.shared_state import SharedState
from async_runtime.weights import Weights

PROJECT_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# What a replica needs of the project is its code: not the environment, history, runs or pictures.
NOT_SHIPPED = [".git", "venv", "runs", "docs", "tests", "*.keras"]  # Ray leaves .venv out itself
START_TIMEOUT_SECONDS = 300  # to place a replica, start its process, build and compile its networks
STOP_TIMEOUT_SECONDS = 60
CONNECT_TIMEOUT_SECONDS = 10


def connect(address):
    """Join the Ray cluster at ``address`` (host:port, or auto), shipping this project's code to it."""
    refuse = f"--ray_address {address}: cannot join a Ray cluster there"
    host, _, port = address.rpartition(":")
    if host and port.isdigit():
        try:  # Ray itself would retry for minutes, logging each try
            socket.create_connection((host, int(port)), timeout=CONNECT_TIMEOUT_SECONDS).close()
        except OSError as error:
            raise UsageError(f"{refuse} ({error.strerror or error})") from None
    try:
        ray.init(
            address=address,
            runtime_env={"working_dir": PROJECT_ROOT, "excludes": NOT_SHIPPED},
            log_to_driver=False,  # replicas report through their exchanges, not their consoles
            logging_level=logging.WARNING,
        )
    except (ConnectionError, ValueError, RuntimeError) as error:
        raise UsageError(f"{refuse} ({error})") from None


@dataclasses.dataclass
class Report:
    """What a replica sends at an exchange."""

    theta_change: list  # arrays: its theta now minus what this process already holds of it
    steps: int  # agent steps since the last exchange
    episodes: list  # EpisodeRecord
    failures: list  # (who, traceback)
    losses: np.ndarray  # its threads' rows of SharedState.losses: [loss sum, states learned from]


class ReplicaState(SharedState):
    """A replica's shared state: its threads' theta and T, with theta-minus kept by the run's process."""

    def update_target(self):
        """Nothing: theta-minus is synced where T is kept, and arrives with the next exchange."""


class Replica:
    """A Ray actor: one group of actor-learner threads on a replica of the run's state."""

    def __init__(self, args, num_actions, model, group, actor_learner_thread, max_segment_steps, start):
        self.shared = ReplicaState(args, num_actions, model)
        self.shared.theta.assign(start["theta"])
        for array, value in zip(self.shared.optimizer.mean_squares, start["mean_squares"]):
            np.copyto(array, value)
        if self.shared.target is not None:
            self.shared.target.assign(start["theta_minus"])
        self.shared.T.reset(start["T"])
        self._reported_T = start["T"]
        self._known = Weights.copy_of(start["theta"])  # this replica's theta as the run's process holds it
        self.group = group
        self.learners = [ActorLearner(index, self.shared, max_segment_steps) for index in group]
        self.learners[0].warm_up()
        self.actor_learner_thread = actor_learner_thread
        self.threads = []

    def start(self):
        """Start the threads; return where this replica runs: its Ray node and process id."""
        self.threads = start_threads(self.actor_learner_thread, self.learners, self.shared)
        return f"Ray node {ray.get_runtime_context().get_node_id()}, pid {os.getpid()}"

    def exchange(self, theta, T, theta_minus):
        """Take the run's ``theta``, ``T`` and (if synced since) ``theta_minus``; report what changed here."""
        changes = []
        for mine, known, latest in zip(self.shared.theta.arrays, self._known.arrays, theta):
            change = mine - known
            mine += latest - known  # the others' updates; what the threads write meanwhile stays
            np.add(latest, change, out=known)
            changes.append(change)
        with self.shared.block.lock:  # the threads add to T under the same lock
            steps = self.shared.T.value - self._reported_T
            self._reported_T = T + steps
            self.shared.T.reset(self._reported_T)
        if theta_minus is not None:
            self.shared.target.assign(theta_minus)
        return Report(changes, steps, drain(self.shared.episodes), drain(self.shared.failures),
                      self.shared.losses[self.group].copy())

    def stop(self):
        self.shared.stop_event.set()
        for thread in self.threads:
            thread.join()


class FreshProcessReplica(Replica):
    """A Replica as Ray starts it, in a process of its own: TensorFlow's thread pools are sized first."""

    def __init__(self, args, num_actions, model, group, actor_learner_thread, max_segment_steps, start):
        configure_threads(args.seed, actor_threads=len(group))
        super().__init__(args, num_actions, model, group, actor_learner_thread, max_segment_steps, start)


class RayActorLearners:
    """The groups of threads beyond this process's, as replicas on the Ray cluster; WorkerProcesses' interface."""

    def __init__(self, shared, groups, actor_learner_thread, max_segment_steps):
        self.shared = shared
        self.groups = groups
        self._replica_arguments = (shared.args, shared.num_actions, shared.model, actor_learner_thread, max_segment_steps)
        self.replicas = {}  # number -> Ray actor, while it takes part
        self.starting = {}  # number -> (Ray actor, its start call, deadline): replacements not yet exchanging
        self.places = {}  # number -> where its replica runs (Ray node, pid)
        self.restarts_left = shared.args.ray_max_restarts
        self._deaths = []
        self._notices = []
        self._sent_target_version = None
        self._exchanger = threading.Thread(target=self._exchange_until_stopped, name="ray-exchange", daemon=True)

    def start(self):
        """Ask the cluster for one replica per group, each from the run's state as it is now."""
        if self.shared.target is not None:  # before the copies: a sync in between is sent at the first exchange
            self._sent_target_version = self.shared.target.version
        for number in range(1, len(self.groups) + 1):
            self.replicas[number] = self._launch(number)

    def _launch(self, number):
        """A new Ray actor for group ``number``, on the run's theta, RMSProp statistics, theta-minus and T of now."""
        shared = self.shared
        start = {
            "theta": shared.theta.copy(),
            "mean_squares": [array.copy() for array in shared.optimizer.mean_squares],
            "theta_minus": shared.target.arrays if shared.target is not None else None,
            "T": shared.T.value,
        }
        args, num_actions, model, actor_learner_thread, max_segment_steps = self._replica_arguments
        # Ray's own restarts (max_restarts) would rebuild the actor from the state the run had when
        # it was first created, and the exchange's bookkeeping with it: _lose launches one from the state of now.
        options = dict(num_cpus=len(self.groups[number - 1]), scheduling_strategy="SPREAD", max_restarts=0)
        return ray.remote(FreshProcessReplica).options(**options).remote(
            args, num_actions, model, self.groups[number - 1], actor_learner_thread, max_segment_steps, start
        )

    def wait_until_ready(self):
        """Wait until every replica has been placed, built and started, then exchange until the run stops."""
        for number, replica in list(self.replicas.items()):
            try:
                self.places[number] = ray.get(replica.start.remote(), timeout=START_TIMEOUT_SECONDS)
                print(f"{self._name(number)}: {self.places[number]}")
            except ray.exceptions.GetTimeoutError:
                self._lose(number, self._could_not_start(number))
            except ray.exceptions.RayError as error:
                self.shared.failures.put((self._name(number), str(error)))
                self._lose(number)
        self._exchanger.start()

    def alive(self):
        return self._exchanger.is_alive()

    def join(self, timeout):
        self._exchanger.join(timeout)

    def deaths(self):
        """One line per replica lost for good: the run stops."""
        return list(self._deaths)

    def notices(self):
        """One line per replica lost and replaced, and per replacement started, since the last call."""
        notices, self._notices = self._notices, []
        return notices

    def _exchange_until_stopped(self):
        try:
            self._exchange_until_stopped_unguarded()
        except BaseException:  # noqa: BLE001  without exchanges the replicas train on their own: stop the run
            self.shared.failures.put(("the exchange with the Ray actors", traceback.format_exc()))
            self.shared.stop_event.set()

    def _exchange_until_stopped_unguarded(self):
        interval = self.shared.args.ray_sync_interval
        while (self.replicas or self.starting) and not self.shared.should_stop():
            self._welcome_replacements()
            self._exchange()
            self.shared.stop_event.wait(interval)
        stops = {number: replica.stop.remote() for number, replica in self.replicas.items()}
        for number, ref in stops.items():
            self._get(number, ref, STOP_TIMEOUT_SECONDS)
        self._exchange()  # their last changes and steps, before the run saves
        for replica in [*self.replicas.values(), *(actor for actor, _, _ in self.starting.values())]:
            ray.kill(replica)

    def _exchange(self):
        shared = self.shared
        theta, T = ray.put(shared.theta.copy()), shared.T.value  # one copy for all replicas
        theta_minus = None
        if shared.target is not None and shared.target.version != self._sent_target_version:
            self._sent_target_version = shared.target.version
            theta_minus = ray.put(shared.target.arrays)
        calls = {number: replica.exchange.remote(theta, T, theta_minus) for number, replica in self.replicas.items()}
        for number, call in calls.items():
            report = self._get(number, call)
            if report is None:
                continue
            for array, change in zip(shared.theta.arrays, report.theta_change):
                array += change
            old_T, new_T = shared.T.add(report.steps)
            if shared.target is not None and crossed(old_T, new_T, shared.args.target_network_update_frequency):
                shared.update_target()
            for record in report.episodes:
                shared.episodes.put(record)
            for failure in report.failures:
                shared.failures.put(failure)
            shared.losses[self.groups[number - 1]] = report.losses

    def _get(self, number, call, timeout=None):
        """The result of a replica's ``call``; None, the replica lost, if it died."""
        try:
            return ray.get(call, timeout=timeout)
        except ray.exceptions.RayActorError as error:
            self._lose(number, f"died ({_first_line(error)})")
        except ray.exceptions.GetTimeoutError:
            self._lose(number, f"did not stop within {timeout} s")
        return None

    def _lose(self, number, how=None):
        """Stop exchanging with replica ``number``; replace it if the run goes on and restarts are left.

        ``how`` it was lost is a notice when it is replaced, else a death that stops the run;
        without ``how``, its failure has been reported already.
        """
        self.replicas.pop(number, None)
        if how is None:
            return
        lost = f"{self._name(number)}" + (f" on {self.places[number]}" if number in self.places else "") + f" {how}"
        if self.restarts_left > 0 and not self.shared.should_stop():
            self.restarts_left -= 1
            self._notices.append(f"{lost}: starting a replacement ({self.restarts_left} more allowed by --ray_max_restarts)")
            replacement = self._launch(number)
            self.starting[number] = (replacement, replacement.start.remote(), time.monotonic() + START_TIMEOUT_SECONDS)
        else:
            self._deaths.append(lost)

    def _welcome_replacements(self):
        """Move each replacement that has started into the exchanges; lose one that could not start."""
        for number, (replacement, started, deadline) in list(self.starting.items()):
            if ray.wait([started], timeout=0)[0]:
                del self.starting[number]
                self.places.pop(number, None)
                try:
                    self.places[number] = ray.get(started)
                except ray.exceptions.RayActorError as error:
                    self._lose(number, f"replacement died while starting ({_first_line(error)})")
                    continue
                self.replicas[number] = replacement
                self._notices.append(f"{self._name(number)}: replacement training on {self.places[number]}")
            elif time.monotonic() > deadline:
                del self.starting[number]
                ray.kill(replacement)
                self.places.pop(number, None)
                self._lose(number, f"replacement {self._could_not_start(number)}")

    def _could_not_start(self, number):
        return (f"could not start on the Ray cluster within {START_TIMEOUT_SECONDS} s "
                f"(does it have {len(self.groups[number - 1])} free CPUs? see `ray status`)")

    def _name(self, number):
        return process_name(number, self.groups[number - 1])


def _first_line(error):
    return str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__

