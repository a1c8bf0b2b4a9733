"""A training run from start to end: actor-learners, checkpoints on a clock, signals, failures, exit status."""

import math
import os
import signal
import sys
import time

from async_runtime.actor_learner import ActorLearner, final_epsilons, num_actions_of
from async_runtime.checkpoints import Checkpoints
from async_runtime.errors import UsageError
from async_runtime.evaluation import evaluate
from async_runtime.flags import ensure_writable
from async_runtime.health import HealthCheck
from async_runtime.memory import drain
from async_runtime.processes import WorkerProcesses, configure_threads, start_threads, thread_groups
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
    threads_here = 1 if args.testing else len(thread_groups(args.num_actor_threads, args.num_processes)[0])
    configure_threads(args.seed, actor_threads=threads_here)
    try:
        if args.testing:
            return evaluate(args, model)
        return train(args, actor_learner_thread, max_segment_steps, model)
    except UsageError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


def train(args, actor_learner_thread, max_segment_steps, model):
    summary_dir = os.path.join(args.summary_dir, args.experiment)
    checkpoint_dir = os.path.join(args.checkpoint_dir, args.experiment)
    for path in (summary_dir, checkpoint_dir):
        ensure_writable(path)
    shared = SharedState(args, num_actions_of(args), model)
    here, *elsewhere = thread_groups(args.num_actor_threads, args.num_processes)
    learners = [
        ActorLearner(i, shared, max_segment_steps, render=args.render_environment and i == 0) for i in here
    ]
    learners[0].warm_up()
    checkpoints = Checkpoints(shared, checkpoint_dir)
    resumed_from = checkpoints.restore_latest()  # before any other process maps the shared state
    if resumed_from:
        print(f"resuming {args.experiment} from {resumed_from} at T = {shared.T.value:,}")
    if args.ray_address:
        from async_runtime import cluster  # Ray is installed only where --ray_address is used

        cluster.connect(args.ray_address)
        workers = cluster.RayActorLearners(shared, elsewhere, actor_learner_thread, max_segment_steps)
    else:
        workers = WorkerProcesses(shared, elsewhere, actor_learner_thread, max_segment_steps)
    log = TrainingLog(summary_dir, args, shared.T.value, model)
    processes = f" in {args.num_processes} processes" if args.num_processes > 1 else ""
    if args.picked_for_cores:
        processes += (
            f" (picked for {args.picked_for_cores} usable cores: --num_actor_threads and --num_processes choose)"
        )
    if args.ray_address:
        processes += f", {len(elsewhere)} on the Ray cluster at {args.ray_address}"
    print(
        f"training {args.experiment}: {args.game}, {args.num_actor_threads} actor-learner threads{processes}, "
        f"T_max {args.T_max:,}; TensorBoard: tensorboard --logdir {summary_dir}"
    )
    if model.explores_epsilon_greedily:  # why threads' training scores differ: some explore at 0.5 all run
        drawn = ", ".join(f"{epsilon:g}" for epsilon in final_epsilons(args))
        print(f"final epsilon of each thread, drawn by --seed from --final_epsilon_choices: {drawn}")
    return Driver(args, shared, learners, workers, checkpoints, log).run(actor_learner_thread)


class Driver:
    """Starts the actor-learners, then logs, checkpoints and watches them until they stop."""

    def __init__(self, args, shared, learners, workers, checkpoints, log):
        self.args = args
        self.shared = shared
        self.learners = learners  # this process's
        self.workers = workers
        self.checkpoints = checkpoints
        self.log = log
        self.failure = None  # the first failure's message
        self.diverged = False
        self.signal_received = None
        self.health = HealthCheck(shared.model.outputs_numpy, args.learning_rate, args.epsilon_RMSProp)

    def run(self, actor_learner_thread):
        previous_handlers = self._install_signal_handlers()
        self.workers.start()
        self.workers.wait_until_ready()
        threads = start_threads(actor_learner_thread, self.learners, self.shared)
        last_summary = last_checkpoint = time.monotonic()
        last_T, last_losses = self.shared.T.value, self._losses()
        while any(thread.is_alive() for thread in threads) or self.workers.alive():
            if self.shared.stop_event.is_set():
                for thread in threads:
                    thread.join()
                self.workers.join(timeout=0.5)
            else:
                self.shared.stop_event.wait(0.5)
            if self.signal_received is not None:
                self.shared.stop_event.set()
            self._watch()
            for learner in self.learners:
                self.health.sample.add(learner.current_state)
            self.log.progress.tick(self.shared.T.value)
            now = time.monotonic()
            if now - last_summary >= self.args.summary_interval:
                last_T, last_losses = self._log_rates(now - last_summary, last_T, last_losses)
                last_summary = now
            if now - last_checkpoint >= self.args.checkpoint_interval:
                self._save()
                last_checkpoint = now
        self._watch()
        status = self._finish()
        for signum, handler in previous_handlers.items():  # a caller in the same process gets its own back
            signal.signal(signum, handler)
        return status

    def _watch(self):
        """Log finished games and replaced workers; stop the run at an actor-learner's failure or a worker's death."""
        deaths = self.workers.deaths()  # first: a process sends its failure before it ends
        for notice in self.workers.notices():
            self.log.warning(self.shared.T.value, notice)
        self.log.episodes(drain(self.shared.episodes))
        for who, message in drain(self.shared.failures):
            self._fail(f"{who} failed:\n{message.rstrip()}")
        for death in deaths:
            self._fail(death)

    def _fail(self, message, diverged=False):
        if self.failure is None:
            self.failure, self.diverged = message, diverged
        self.shared.stop_event.set()

    def _install_signal_handlers(self):
        def stop(signum, _frame):
            if self.signal_received is not None:
                os._exit(128 + signum)  # a second signal: leave at once
            self.signal_received = signum
            self.log.message(
                f"{signal.Signals(signum).name}: stopping the actor-learners and saving a checkpoint "
                "(Ctrl-C again quits at once)"
            )
            # The loop sets the stop event: a multiprocessing Event set here, while this
            # thread waits on it in the loop, would wait for its own wake-up forever.

        return {signum: signal.signal(signum, stop) for signum in (signal.SIGINT, signal.SIGTERM)}

    def _losses(self):
        loss_sum, loss_count = self.shared.losses.sum(axis=0)
        return float(loss_sum), int(loss_count)

    def _log_rates(self, seconds, last_T, last_losses):
        T = self.shared.T.value
        frames_per_second = (T - last_T) * self.learners[0].frames_per_step / seconds
        loss_sum, loss_count = self._losses()
        new_states = loss_count - last_losses[1]
        loss = (loss_sum - last_losses[0]) / new_states if new_states else None
        if loss is not None and not math.isfinite(loss):
            self._fail(DIVERGED.format(what=f"the loss is {loss}"), diverged=True)
        elif not all_finite(self.shared.theta.arrays):
            self._fail(DIVERGED.format(what="a weight is NaN or infinite"), diverged=True)
        self.log.rates(T, frames_per_second, self.shared.learning_rate(), loss)
        self._check_health(T)
        return T, (loss_sum, loss_count)

    def _check_health(self, T):
        # On a snapshot: the threads go on updating theta, and outputs measured across
        # two thetas would differ for a dead network too (by 1.2e-7 once, in a test).
        measured = self.health.measure(self.shared.theta.copy())
        if measured is None:
            return
        self.log.health(T, *measured)
        warning = self.health.warning(*measured)
        if warning:
            self.log.warning(T, warning)

    def _save(self):
        path = self.checkpoints.save()
        if path is None:
            self._fail(DIVERGED.format(what="a weight is NaN or infinite"), diverged=True)
        return path

    def _finish(self):
        # After an actor-learner's failure the networks may still be sound: save them
        # (the save refuses non-finite weights). After divergence, keep the last good one.
        path = None if self.diverged else self._save()
        self.log.close()
        if path:
            print(f"saved checkpoint {path} at T = {self.shared.T.value:,}")
        if self.failure is not None:
            print(f"error: {self.failure}", file=sys.stderr)
            return 1
        if self.signal_received == signal.SIGTERM:
            return 128 + signal.SIGTERM
        return 0

