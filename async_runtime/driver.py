"""A training run from start to end: threads, checkpoints on a clock, signals, failures, exit status."""

import math
import os
import queue
import signal
import sys
import threading
import time
import traceback

import threadpoolctl
import tensorflow as tf

from async_runtime.actor_learner import ActorLearner, num_actions_of
from async_runtime.checkpoints import Checkpoints
from async_runtime.errors import UsageError
from async_runtime.evaluation import evaluate
from async_runtime.flags import ensure_writable
from async_runtime.reporting import TrainingLog
from async_runtime.shared_state import SharedState
from async_runtime.weights import all_finite

DIVERGED = "training diverged: {what}; the last good checkpoint is kept (try a smaller --learning_rate)"


def main(args, actor_learner_thread, max_segment_steps, model):
    """Run ``--testing`` or training; return the process exit status.

    ``actor_learner_thread(learner, shared, args)`` is the algorithm, run on
    each thread; ``max_segment_steps`` is the most agent steps one of its
    updates covers; ``model`` is its network and loss.
    """
    configure_threads(args.seed, actor_threads=1 if args.testing else args.num_actor_threads)
    try:
        if args.testing:
            return evaluate(args, model)
        return train(args, actor_learner_thread, max_segment_steps, model)
    except UsageError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


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
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(actor_threads if actor_threads <= cores else 1)
    threadpoolctl.threadpool_limits(1, user_api="blas")
    tf.keras.utils.set_random_seed(seed)


def train(args, actor_learner_thread, max_segment_steps, model):
    summary_dir = os.path.join(args.summary_dir, args.experiment)
    checkpoint_dir = os.path.join(args.checkpoint_dir, args.experiment)
    for path in (summary_dir, checkpoint_dir):
        ensure_writable(path)
    shared = SharedState(args, num_actions_of(args), model)
    learners = [
        ActorLearner(i, shared, max_segment_steps, render=args.render_environment and i == 0)
        for i in range(args.num_actor_threads)
    ]
    warm_up(learners[0])
    checkpoints = Checkpoints(shared, checkpoint_dir)
    resumed_from = checkpoints.restore_latest()
    if resumed_from:
        print(f"resuming {args.experiment} from {resumed_from} at T = {shared.T.value:,}")
    log = TrainingLog(summary_dir, args, shared.T.value, model)
    print(
        f"training {args.experiment}: {args.game}, {args.num_actor_threads} actor-learner threads, "
        f"T_max {args.T_max:,}; TensorBoard: tensorboard --logdir {summary_dir}"
    )
    return Driver(args, shared, learners, checkpoints, log).run(actor_learner_thread)


def warm_up(learner):
    """Trace and compile every function once, before threads start and clocks run.

    Runs before a checkpoint is restored: an empty segment's gradient is zero,
    which leaves theta and the still-zero RMSProp statistics as they are.
    """
    learner.sync_local()
    if learner.shared.target is not None:
        learner.max_target_q(learner.next_states)
    learner.learn(learner.states[:0], [], learner.targets[:0])


class Driver:
    """Starts the threads, then logs, checkpoints and watches them until they stop."""

    def __init__(self, args, shared, learners, checkpoints, log):
        self.args = args
        self.shared = shared
        self.learners = learners
        self.checkpoints = checkpoints
        self.log = log
        self.failure = None  # (thread index or None, message) of the first failure
        self.signal_received = None

    def run(self, actor_learner_thread):
        previous_handlers = self._install_signal_handlers()
        threads = [
            threading.Thread(
                target=self._guard, args=(actor_learner_thread, learner), name=f"actor-learner-{learner.index}"
            )
            for learner in self.learners
        ]
        for thread in threads:
            thread.start()
        last_summary = last_checkpoint = time.monotonic()
        last_T, last_losses = self.shared.T.value, self._losses()
        while any(thread.is_alive() for thread in threads):
            self.shared.stop_event.wait(0.5)
            self._log_episodes()
            self.log.progress.tick(self.shared.T.value)
            now = time.monotonic()
            if now - last_summary >= self.args.summary_interval:
                last_T, last_losses = self._log_rates(now - last_summary, last_T, last_losses)
                last_summary = now
            if now - last_checkpoint >= self.args.checkpoint_interval:
                self._save()
                last_checkpoint = now
            if self.shared.stop_event.is_set():
                for thread in threads:
                    thread.join()
        self._log_episodes()
        status = self._finish()
        for signum, handler in previous_handlers.items():  # a caller in the same process gets its own back
            signal.signal(signum, handler)
        return status

    def _guard(self, actor_learner_thread, learner):
        """Run one thread's loop; any failure stops the whole run."""
        try:
            actor_learner_thread(learner, self.shared, self.args)
        except BaseException:  # noqa: BLE001  whatever it is, the other threads must stop too
            self._fail(learner.index, traceback.format_exc())

    def _fail(self, thread, message):
        if self.failure is None:
            self.failure = (thread, message)
        self.shared.stop_event.set()

    def _install_signal_handlers(self):
        def stop(signum, _frame):
            if self.signal_received is not None:
                os._exit(128 + signum)  # a second signal: leave at once
            self.signal_received = signum
            self.log.message(
                f"{signal.Signals(signum).name}: stopping the threads and saving a checkpoint "
                "(Ctrl-C again quits at once)"
            )
            self.shared.stop_event.set()

        return {signum: signal.signal(signum, stop) for signum in (signal.SIGINT, signal.SIGTERM)}

    def _log_episodes(self):
        while True:
            try:
                self.log.episode(self.shared.episodes.get_nowait())
            except queue.Empty:
                return

    def _losses(self):
        return (sum(learner.loss_sum for learner in self.learners), sum(learner.loss_count for learner in self.learners))

    def _log_rates(self, seconds, last_T, last_losses):
        T = self.shared.T.value
        frames_per_second = (T - last_T) * self.learners[0].frames_per_step / seconds
        loss_sum, loss_count = self._losses()
        new_states = loss_count - last_losses[1]
        loss = (loss_sum - last_losses[0]) / new_states if new_states else None
        if loss is not None and not math.isfinite(loss):
            self._fail(None, DIVERGED.format(what=f"the loss is {loss}"))
        elif not all_finite(self.shared.theta.arrays):
            self._fail(None, DIVERGED.format(what="a weight is NaN or infinite"))
        self.log.rates(T, frames_per_second, self.shared.learning_rate(), loss)
        return T, (loss_sum, loss_count)

    def _save(self):
        path = self.checkpoints.save()
        if path is None:
            self._fail(None, DIVERGED.format(what="a weight is NaN or infinite"))
        return path

    def _finish(self):
        thread_failed = self.failure is not None and self.failure[0] is not None
        # After a thread's failure the networks may still be sound: save them
        # (the save refuses non-finite weights). After divergence, keep the last good one.
        path = self._save() if self.failure is None or thread_failed else None
        self.log.close()
        if path:
            print(f"saved checkpoint {path} at T = {self.shared.T.value:,}")
        if self.failure is not None:
            thread, message = self.failure
            if thread is not None:
                message = f"actor-learner thread {thread} failed:\n{message.rstrip()}"
            print(f"error: {message}", file=sys.stderr)
            return 1
        if self.signal_received == signal.SIGTERM:
            return 128 + signal.SIGTERM
        return 0
