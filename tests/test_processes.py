"""--num_processes: actor-learner threads in several processes, on one theta, T and theta-minus in shared memory.

The real scripts in real processes on Catch-v0, as a user runs them: one
run over processes resumes with one process and back, Ctrl-C and SIGTERM
stop every process, kill -9 leaves nothing behind, and a worker's failure
or death stops the run as a thread's does (divergence in a worker: test_safety.py).
"""

import multiprocessing
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

import async_q_nstep
from async_runtime.memory import ALIGNMENT, SharedBlock
from async_runtime.processes import thread_groups
from async_runtime.schedules import draw_final_epsilon
from async_runtime.shared_state import SharedState
from conftest import ROOT, checkpoint_T, event_tags, machine_wide, run_script, script_env, wait_for_line

CATCH = ["--game", "Catch-v0", "--num_actor_threads", "2", "--num_processes", "2", "--summary_interval", "1"]
ENDLESS = [*CATCH, "--T_max", "100000000"]


def test_threads_are_spread_over_processes_as_evenly_as_they_divide():
    assert thread_groups(4, 1) == [[0, 1, 2, 3]]
    assert thread_groups(4, 2) == [[0, 1], [2, 3]]
    assert thread_groups(5, 3) == [[0, 1], [2, 3], [4]]


# -- the shared memory -------------------------------------------------------------


def write_in_child(block):
    """Runs in a spawned process: report what the parent wrote, write back."""
    assert all(array.ctypes.data % ALIGNMENT == 0 for array in block.arrays.values())
    block.episodes.put(f"T is {block.arrays['T'][0]}")
    block.arrays["theta/0"][:] = [1.0, 2.0, 3.0]
    block.arrays["T"][0] = 7


def test_a_shared_block_is_the_same_memory_in_the_processes_it_starts():
    block = SharedBlock([("theta/0", (3,), np.float32), ("T", (1,), np.int64)], processes=True)
    block.arrays["T"][0] = 5
    child = multiprocessing.get_context("spawn").Process(target=write_in_child, args=(block,))
    child.start()
    assert block.episodes.get(timeout=60) == "T is 5"
    child.join(timeout=60)
    assert child.exitcode == 0
    np.testing.assert_array_equal(block.arrays["theta/0"], [1.0, 2.0, 3.0])
    assert block.arrays["T"][0] == 7


def test_a_reader_of_theta_minus_computes_again_when_a_sync_rewrote_its_copy_meanwhile():
    shared = SharedState(async_q_nstep.parse_args(["--game", "Catch-v0"]), num_actions=3)
    target = shared.target

    def filled(value):
        return [np.full_like(array, value) for array in shared.theta.arrays]

    def read_with_syncs_midway(values):
        """Read the first and last layers of theta-minus, with syncs to ``values`` in between, the first time."""
        calls = []

        def compute(weights):
            first = weights.arrays[0].copy()
            if not calls:
                for value in values:
                    target.assign(filled(value))
            calls.append(None)
            return np.unique(np.concatenate([first.ravel(), weights.arrays[-1].ravel()])).tolist()

        return target.read(compute), len(calls)

    target.assign(filled(1.0))
    # One sync midway writes the other copy: the read was whole, it stands.
    assert read_with_syncs_midway([2.0]) == ([1.0], 1)
    # Two syncs midway rewrite the copy being read (it would be half 2, half 4): read again.
    assert read_with_syncs_midway([3.0, 4.0]) == ([4.0], 2)
    np.testing.assert_array_equal(target.arrays[0], filled(4.0)[0])


# -- one run over processes --------------------------------------------------------


def scalars(directory, tag):
    """(T, value) of each ``tag`` summary under ``directory``."""
    found = []
    for path in Path(directory).rglob("events.out.tfevents.*"):
        for event in tf.compat.v1.train.summary_iterator(str(path)):
            found += [(event.step, float(tf.make_ndarray(value.tensor)))
                      for value in event.summary.value if value.tag == tag]
    return found


@pytest.mark.slow  # three runs, up to two processes each
def test_a_run_over_two_processes_resumes_with_one_and_back(tmp_path, run_dirs):
    """Each thread's own final epsilon shows in the one event stream: the worker's games reach it."""
    choices = ["0.1", "0.5"]

    def final_epsilon(seed, thread):
        return draw_final_epsilon(np.random.default_rng([seed, thread]), [float(c) for c in choices], [0.5, 0.5])

    seed = next(seed for seed in range(100) if final_epsilon(seed, 0) != final_epsilon(seed, 1))
    flags = [*CATCH, "--seed", seed, "--experiment", "mixed", "--anneal_epsilon_timesteps", "500",
             "--final_epsilon_choices", *choices, "--final_epsilon_choice_probabilities", "0.5", "0.5", *run_dirs]
    checkpoints = tmp_path / "checkpoints" / "mixed"

    first = run_script("async_q_nstep.py", *flags, "--T_max", "3000", timeout=180)
    assert "2 actor-learner threads in 2 processes" in first.stdout
    drawn = f"{final_epsilon(seed, 0):g}, {final_epsilon(seed, 1):g}"
    assert f"final epsilon of each thread, drawn by --seed from --final_epsilon_choices: {drawn}" in first.stdout
    first_T = checkpoint_T(tf.train.latest_checkpoint(str(checkpoints)))
    assert first_T >= 3000
    epsilons = scalars(tmp_path / "summaries" / "mixed", "episode/epsilon")
    assert {round(value, 6) for T, value in epsilons if T > 1000} == {0.1, 0.5}
    assert {"episode/score", "charts/frames_per_second", "losses/td_loss"} <= event_tags(
        tmp_path / "summaries" / "mixed"
    )

    second = run_script("async_q_nstep.py", *flags, "--num_processes", "1", "--T_max", "6000", timeout=180)
    assert f"at T = {first_T:,}" in second.stdout
    second_T = checkpoint_T(tf.train.latest_checkpoint(str(checkpoints)))
    assert second_T >= 6000

    third = run_script("async_q_nstep.py", *flags, "--T_max", "9000", timeout=180)
    assert f"at T = {second_T:,}" in third.stdout
    assert checkpoint_T(tf.train.latest_checkpoint(str(checkpoints))) >= 9000


# -- stopping, dying, failing ------------------------------------------------------


def start_in_own_group(*flags):
    """Start n-step Q in a process group of its own, as a shell starts a command (Ctrl-C reaches all of it)."""
    return subprocess.Popen(
        [sys.executable, str(ROOT / "async_q_nstep.py"), *map(str, flags)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT, env=script_env(),
        start_new_session=True,
    )


def worker_pids(pid):
    """The actor-learner processes that ``pid`` started (its spawned children, not multiprocessing's tracker)."""
    workers = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            parent = int(stat.read_text().rsplit(")", 1)[1].split()[1])
            command = (stat.parent / "cmdline").read_bytes()
        except (OSError, IndexError):
            continue
        if parent == pid and b"spawn_main" in command:
            workers.append(int(stat.parent.name))
    return workers


def running(pid):
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")  # a zombie has ended; its new parent may never reap it here


def wait_until(condition, timeout):
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


@pytest.mark.parametrize(
    "signum, whole_group, status",
    [
        pytest.param(signal.SIGINT, True, 0, marks=pytest.mark.slow, id="ctrl-c"),  # the terminal signals the group
        pytest.param(signal.SIGTERM, False, 128 + signal.SIGTERM, id="sigterm"),  # Docker's, Kubernetes': the main one
        pytest.param(signal.SIGTERM, True, 128 + signal.SIGTERM, marks=pytest.mark.slow, id="sigterm-group"),  # Slurm's
    ],
)
def test_ctrl_c_and_sigterm_stop_every_process_and_save(signum, whole_group, status, tmp_path, run_dirs):
    process = start_in_own_group(*ENDLESS, "--experiment", "stop", *run_dirs)
    wait_for_line(process, r"^T [\d,]+/.*score -?\d")
    workers = worker_pids(process.pid)
    assert len(workers) == 1
    if whole_group:
        os.killpg(process.pid, signum)
    else:
        process.send_signal(signum)
    stdout, stderr = process.communicate(timeout=30)
    assert process.returncode == status, stderr
    assert "Traceback" not in stderr and "error" not in stderr, stderr
    saved = [line for line in stdout.splitlines() if line.startswith("saved checkpoint")]
    assert saved, stdout
    assert f"at T = {checkpoint_T(tf.train.latest_checkpoint(str(tmp_path / 'checkpoints' / 'stop'))):,}" in saved[0]
    assert not any(running(pid) for pid in workers)


@pytest.mark.slow  # two processes, each importing TensorFlow; `make test` keeps SIGTERM's case
@machine_wide  # what another test holds in /dev/shm meanwhile would count against this run
def test_kill_9_of_the_main_process_leaves_no_worker_and_nothing_in_dev_shm(run_dirs):
    before = set(os.listdir("/dev/shm"))
    process = start_in_own_group(*ENDLESS, "--experiment", "killed", *run_dirs)
    wait_for_line(process, r"^T [\d,]+/")
    workers = worker_pids(process.pid)
    assert len(workers) == 1
    process.kill()
    process.communicate(timeout=30)
    assert wait_until(lambda: not any(running(pid) for pid in workers), timeout=10), "an orphan worker trains on"
    assert wait_until(lambda: set(os.listdir("/dev/shm")) <= before, timeout=10), set(os.listdir("/dev/shm")) - before


@pytest.mark.slow  # two processes, each importing TensorFlow; `make test` keeps SIGTERM's case
def test_a_killed_worker_process_stops_the_run_and_the_networks_are_saved(tmp_path, run_dirs):
    process = start_in_own_group(*ENDLESS, "--experiment", "worker_killed", *run_dirs)
    wait_for_line(process, r"^T [\d,]+/")
    (worker,) = worker_pids(process.pid)
    os.kill(worker, signal.SIGKILL)
    stdout, stderr = process.communicate(timeout=30)
    assert process.returncode == 1
    assert stderr.strip().splitlines()[-1] == "error: actor-learner process 1 (thread 1) was killed by SIGKILL"
    assert "saved checkpoint" in stdout


FAULTY_IN_WORKERS = textwrap.dedent(
    """
    # Loaded at interpreter start (PYTHONPATH): a Catch that fails after 300
    # steps in the worker processes, and only there.
    import multiprocessing
    import gymnasium as gym
    import catch

    class FaultyCatch(catch.CatchEnv):
        steps = 0

        def step(self, action):
            self.steps += 1
            if multiprocessing.parent_process() is not None and self.steps > 300:
                raise RuntimeError("injected emulator failure")
            return super().step(action)

    gym.register(id="FaultyCatch-v0", entry_point=FaultyCatch)
    """
)


@pytest.mark.slow  # two processes, each importing TensorFlow; `make test` keeps SIGTERM's case
def test_a_failing_thread_in_a_worker_process_stops_the_run_with_its_traceback(tmp_path, run_dirs):
    (tmp_path / "sitecustomize.py").write_text(FAULTY_IN_WORKERS)
    completed = run_script(
        "async_q_nstep.py", *ENDLESS, "--game", "FaultyCatch-v0", "--experiment", "faulty", *run_dirs,
        check=False, timeout=120, env=script_env(PYTHONPATH=f"{tmp_path}:{ROOT}"),
    )
    assert completed.returncode == 1, completed.stderr
    assert "error: actor-learner thread 1 failed:" in completed.stderr
    assert completed.stderr.count("RuntimeError: injected emulator failure") == 1
    assert "saved checkpoint" in completed.stdout
