"""The plumbing the asynchronous learners share, one concern per module.

``async_q_1step.py``, ``async_q_nstep.py``, ``async_sarsa_1step.py`` and
``async_a3c.py`` hold their algorithms: the actor-learner loop and its
targets. What runs around them lives here:

    flags          the flags the scripts take, validated before anything starts
    errors         the errors a user can cause: one line and exit status 2
    machine        the cores this process may use, and the threads and processes a run gets
    models         what a learner's network is and its loss: Q-network or actor-critic
    schedules      epsilon, learning rate, target-sync boundary, epsilon-greedy
    weights        network weights as NumPy arrays and, on the same memory, tensors
    rmsprop        the shared, lock-free RMSProp step (numba, outside the GIL)
    memory         the block of memory they share, in one process or across processes
    shared_state   theta, theta-minus, RMSProp statistics and T: what all actor-learners share
    compiled       the TensorFlow functions of the hot loop and how they are called
    actor_learner  one thread's emulator, theta', exploration and updates
    processes      where the actor-learner threads run: this process, and others with --num_processes
    cluster        or, with --ray_address, Ray actors on replicas of theta exchanged with this process
    driver         a training run from start to end: signals, failures, checkpoints, exit status
    reporting      TensorBoard summaries and the console line
    health         whether the network still lives: silent units, outputs that ignore the state
    checkpoints    save, resume, refuse bad files; the .keras export
    evaluation     --testing

Threads first: TensorFlow ops, ale-py's vector env and the shared RMSProp
step release the GIL, so threads overlap where the time is spent, and share
the global network without copies, as the paper's actor-learners do. What
the GIL still serializes, --num_processes takes past: the same threads,
spread over processes that map the same memory; past one machine, Ray
actors that exchange what changed with the run's process.
"""

import os
import sys


def _import_tensorflow_quietly():
    """Import TensorFlow without the notices its C++ libraries print as they load.

    They come (twice: two libraries) before TensorFlow reads its log level:
    oneDNN's, "Could not find cuda drivers", absl's. Python's own errors still
    show, since stderr is back before an exception leaves. A user who asks for
    TensorFlow's info or warnings (TF_CPP_MIN_LOG_LEVEL 0 or 1) sees them all.
    The level this sets is inherited by the scripts a process starts (tests,
    benchmarks), so a level of 2 or more still hides the notices.
    """
    level = os.environ.get("TF_CPP_MIN_LOG_LEVEL")
    if level in ("0", "1"):
        import tensorflow  # noqa: F401
        return
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = level or "2"  # no info or warnings; errors still print
    sys.stderr.flush()
    saved_stderr = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    try:
        import tensorflow as tf

        tf.config.list_physical_devices()  # CUDA's probe, which logs an error where no driver is
    finally:
        os.dup2(saved_stderr, 2)
        os.close(saved_stderr)
        os.close(devnull)


_import_tensorflow_quietly()
