"""Where the actor-learner threads run: in this process and, with --num_processes, in others.

Threads of one process take turns at Python's GIL: each agent step holds it
for a while, so two threads on two cores keep about 1.6 of them busy. With
--num_processes P, the threads are spread over P processes, this one and
P - 1 it starts, all on one SharedBlock: one theta and one set of RMSProp
statistics updated in place without locks, one T, one theta-minus, as the
paper's threads share them. This process keeps the run (logs, checkpoints,
signals); the others only run actor-learners, and they stop when the run's
stop event is set, or at once if this process dies.
"""

import multiprocessing
import os
import signal
import threading
import time
import traceback

import threadpoolctl
import tensorflow as tf

from async_runtime.actor_learner import ActorLearner
from async_runtime.machine import usable_cores
from async_runtime.shared_state import SharedState

PARENT_POLL_SECONDS = 0.5
READY_POLL_SECONDS = 0.1


def configure_threads(seed, actor_threads):
    """Size the libraries' thread pools for ``actor_threads`` streams of work; seed TensorFlow.

    Each kernel and each matrix product runs on one thread: the actor-learner
    threads are already the parallel streams of work. OpenBLAS's worker
    threads (NumPy's products when acting) spin while they wait: with them,
    one actor-learner thread kept 1.8 cores busy; without, 1.0.

    A gradient call's kernels run on TensorFlow's inter-op pool. With as many
    threads as cores, a single pool thread makes their calls queue behind
    each other, so each gets a pool thread; with more threads than cores, the
    threads keep the cores busy and more pool threads only compete with them.
    n-step on 2 cores, 2 pool threads against 1: 2 actor-learner threads
    ~4,300 -> ~4,500 frames/s, 4 threads ~5,000 -> ~4,400.
    TensorFlow fixes the pool sizes at its first operation: call this first.
    """
    cores = usable_cores()
    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(actor_threads if actor_threads <= cores else 1)
    threadpoolctl.threadpool_limits(1, user_api="blas")
    tf.keras.utils.set_random_seed(seed)


def thread_groups(num_actor_threads, num_processes):
    """Each process's actor-learner indices: consecutive, as even as they divide; this process's first."""
    per_process, extra = divmod(num_actor_threads, num_processes)
    groups, start = [], 0
    for process in range(num_processes):
        size = per_process + (process < extra)
        groups.append(list(range(start, start + size)))
        start += size
    return groups


def start_threads(actor_learner_thread, learners, shared):
    """One thread per actor-learner, running ``actor_learner_thread`` under ``run_guarded``."""
    threads = [
        threading.Thread(
            target=run_guarded, args=(actor_learner_thread, learner, shared), name=f"actor-learner-{learner.index}"
        )
        for learner in learners
    ]
    for thread in threads:
        thread.start()
    return threads


def run_guarded(actor_learner_thread, learner, shared):
    """Run one actor-learner's loop; any failure goes to the driver and stops every actor-learner."""
    try:
        actor_learner_thread(learner, shared, shared.args)
    except BaseException:  # noqa: BLE001  whatever it is, the others must stop too
        shared.failures.put((f"actor-learner thread {learner.index}", traceback.format_exc()))
        shared.stop_event.set()


class WorkerProcesses:
    """The processes beyond this one, each running its group of actor-learner threads."""

    def __init__(self, shared, groups, actor_learner_thread, max_segment_steps):
        context = multiprocessing.get_context("spawn")
        self.groups = groups
        self._ready = shared.block.arrays["processes_ready"]
        self.processes = [
            context.Process(
                target=_worker,
                args=(shared.args, shared.num_actions, shared.model, shared.block, number, group,
                      actor_learner_thread, max_segment_steps, os.getpid()),
                name=f"actor-learners-{number}",
                daemon=True,  # if this process leaves by an exception, they go too
            )
            for number, group in enumerate(groups, start=1)
        ]

    def start(self):
        for process in self.processes:
            process.start()

    def wait_until_ready(self):
        """Wait until every process has built and compiled what its threads need, or one has ended.

        The run's actor-learners then start together: without the wait this
        process's threads would train alone for the seconds the others take
        to start (on Catch, whole runs).
        """
        while self._ready[0] < len(self.processes) and all(process.exitcode is None for process in self.processes):
            time.sleep(READY_POLL_SECONDS)

    def alive(self):
        return any(process.is_alive() for process in self.processes)

    def join(self, timeout):
        """Wait up to ``timeout`` seconds in all for the processes to end."""
        deadline = time.monotonic() + timeout
        for process in self.processes:
            process.join(max(0.0, deadline - time.monotonic()))

    def notices(self):
        """Nothing: a process that ends is not replaced (see deaths)."""
        return []

    def deaths(self):
        """One line for each process that has ended with a non-zero status."""
        return [
            f"{process_name(number, group)} {_how_it_ended(process.exitcode)}"
            for number, (process, group) in enumerate(zip(self.processes, self.groups), start=1)
            if process.exitcode not in (None, 0)
        ]


def process_name(number, group):
    """How the logs name worker process ``number``, running the threads ``group``."""
    threads = f"thread {group[0]}" if len(group) == 1 else f"threads {group[0]}-{group[-1]}"
    return f"actor-learner process {number} ({threads})"


def _how_it_ended(exitcode):
    if exitcode < 0:
        return f"was killed by {signal.Signals(-exitcode).name}"
    return f"exited with status {exitcode}"


def _worker(args, num_actions, model, block, number, group, actor_learner_thread, max_segment_steps, parent_pid):
    """Worker process ``number``: the actor-learner threads ``group`` on the run's shared block, until it stops."""
    # Ctrl-C reaches the whole process group, and so does a scheduler's SIGTERM (Slurm's
    # scancel, systemd's stop, `timeout`): the driver stops the run and saves it.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    threading.Thread(target=_exit_with_parent, args=(parent_pid,), daemon=True).start()
    try:
        configure_threads(args.seed, actor_threads=len(group))
        shared = SharedState(args, num_actions, model, block)
        learners = [ActorLearner(index, shared, max_segment_steps) for index in group]
        learners[0].warm_up()
    except BaseException:  # noqa: BLE001  the driver reports it and stops the run
        block.failures.put((process_name(number, group), traceback.format_exc()))
        block.stop_event.set()
        raise SystemExit(1) from None
    with block.lock:
        block.arrays["processes_ready"][0] += 1
    for thread in start_threads(actor_learner_thread, learners, shared):
        thread.join()


def _exit_with_parent(parent_pid):
    """Leave as soon as the driver's process is gone (killed with SIGKILL, say): no orphan keeps training."""
    while os.getppid() == parent_pid:
        time.sleep(PARENT_POLL_SECONDS)
    os._exit(1)
