"""--ray_address: the processes beyond the first as Ray actors, on replicas of theta exchanged with the run.

The exchange's arithmetic on a replica in this process; then the real
script on Catch-v0 on a Ray cluster of two nodes on this machine
(ray.cluster_utils.Cluster), as a user runs it on a rack: the replica
trains on the other node, its steps add to T, its games reach TensorBoard,
a checkpoint resumes, SIGTERM stops and saves; a replica killed, or its node
lost, is replaced and the run finishes; with no restarts left a lost node
stops the run with a line that names it, saved.
"""

import os
import re
import signal
import time
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

import ray  # requirements-dev.txt includes requirements-ray.txt: never skipped
from ray.cluster_utils import Cluster

import async_q_nstep
from async_runtime.cluster import RayActorLearners, Replica, connect
from async_runtime.memory import drain
from async_runtime.shared_state import SharedState
from conftest import checkpoint_T, machine_wide, run_script, start_script, wait_for_line
from test_learning import FLAGS_OF, PASS_MARK, last_50_mean
from test_processes import scalars

pytestmark = machine_wide  # the module's one cluster, on one worker

CATCH_STEPS = 9  # every Catch game: the ball falls through ROWS - 1 rows


def test_an_exchange_keeps_the_replicas_updates_and_brings_everyone_elses():
    args = async_q_nstep.parse_args(
        ["--game", "Catch-v0", "--num_actor_threads", "2", "--num_processes", "2", "--ray_address", "auto"]
    )
    theta = SharedState(args, num_actions=3).theta.copy()
    start = {"theta": theta, "mean_squares": [np.zeros_like(a) for a in theta], "theta_minus": theta, "T": 1000}
    replica = Replica(args, 3, async_q_nstep.model(args), [1], async_q_nstep.actor_learner_thread, 5, start)
    own, others = 0.25, 0.5  # what the replica's threads add, and what the rest of the run adds, meanwhile

    for array in replica.shared.theta.arrays:
        array += own
    replica.shared.T.add(40)
    report = replica.exchange([value + others for value in theta], 1000 + 60, None)
    for change, value, mine in zip(report.theta_change, theta, replica.shared.theta.arrays):
        np.testing.assert_allclose(change, own, rtol=0, atol=1e-6)
        np.testing.assert_allclose(mine, value + own + others, rtol=0, atol=1e-5)
    assert report.steps == 40 and replica.shared.T.value == 1000 + 60 + 40

    # The run has added the change: the next exchange reports only what is new, and takes theta-minus.
    replica.shared.T.add(10)
    theta_minus = [value + 7 for value in theta]
    report = replica.exchange([value + others + own for value in theta], 1000 + 60 + 40 + 30, theta_minus)
    assert all(np.abs(change).max() < 1e-6 for change in report.theta_change)
    assert report.steps == 10 and replica.shared.T.value == 1000 + 60 + 40 + 30 + 10
    np.testing.assert_allclose(replica.shared.target.arrays[0], theta_minus[0])


# -- a cluster of two nodes on this machine ----------------------------------------------


@pytest.fixture(scope="module")
def cluster():
    """A head node with no CPUs for actors, so the replica goes to the other node: two machines' worth."""
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0})
    cluster.add_node(num_cpus=1)
    cluster.wait_for_nodes()
    yield cluster
    cluster.shutdown()


def flags_on(cluster, *extra):
    return ["--game", "Catch-v0", "--num_actor_threads", "2", "--num_processes", "2", "--summary_interval", "1",
            "--ray_address", cluster.address, "--ray_sync_interval", "0.5", *extra]


def worker_node(cluster):
    (node,) = cluster.worker_nodes
    return node


@pytest.mark.slow  # a Ray cluster of two nodes on this machine
def test_a_run_on_two_nodes_counts_both_in_T_resumes_and_stops_on_sigterm(cluster, tmp_path, run_dirs):
    flags = flags_on(cluster, "--experiment", "rack", "--anneal_epsilon_timesteps", "500", *run_dirs)
    checkpoints = tmp_path / "checkpoints" / "rack"

    first = run_script("async_q_nstep.py", *flags, "--T_max", "3000", timeout=300)
    assert "2 actor-learner threads in 2 processes, 1 on the Ray cluster" in first.stdout
    assert f"actor-learner process 1 (thread 1): Ray node {worker_node(cluster).node_id}, pid " in first.stdout
    first_T = checkpoint_T(tf.train.latest_checkpoint(str(checkpoints)))
    # Every game of both threads is logged, each 9 steps: their steps make T, counted once each.
    played = sum(length for _, length in scalars(tmp_path / "summaries" / "rack", "episode/length"))
    assert first_T >= 3000
    assert first_T - 2 * CATCH_STEPS <= played <= first_T
    finals = {round(value, 6) for T, value in scalars(tmp_path / "summaries" / "rack", "episode/epsilon") if T > 600}
    assert len(finals) == 2, finals  # each thread draws its own final epsilon: both threads' games arrived

    second = start_script("async_q_nstep.py", *flags, "--T_max", "100000000")
    lines = wait_for_line(second, r"^T [\d,]+/.*score -?\d", timeout=240)
    assert f"resuming rack from {checkpoints}" in "".join(lines) and f"at T = {first_T:,}" in "".join(lines)
    second.send_signal(signal.SIGTERM)
    stdout, stderr = second.communicate(timeout=90)
    assert second.returncode == 128 + signal.SIGTERM, stderr
    assert "Traceback" not in stderr and "error" not in stderr, stderr
    assert checkpoint_T(tf.train.latest_checkpoint(str(checkpoints))) > first_T


PLACE = r"Ray node (\w+), pid (\d+)"
STARTED = r"^actor-learner process 1 \(thread 1\): " + PLACE
REPLACED = r"^actor-learner process 1 \(thread 1\): replacement training on " + PLACE


def warnings_logged(directory):
    """The TensorBoard text of every warning the run logged."""
    texts = []
    for path in Path(directory).rglob("events.out.tfevents.*"):
        for event in tf.compat.v1.train.summary_iterator(str(path)):
            texts += [tf.make_ndarray(value.tensor).item().decode() for value in event.summary.value
                      if value.tag == "warnings"]
    return texts


def gone(pid, timeout=30):
    """Whether process ``pid`` has ended (or is a zombie) within ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if "\nState:\tZ" in Path(f"/proc/{pid}/status").read_text():
                return True
        except FileNotFoundError:
            return True
        time.sleep(0.5)
    return False


def run_losing_a_replica(cluster, tmp_path, run_dirs, lose, T_max=30_000):
    """Run to ``T_max``, calling ``lose(node id, pid)`` of the replica once training; return stdout, stderr."""
    process = start_script("async_q_nstep.py", *flags_on(cluster, "--experiment", "lost", *run_dirs),
                           "--T_max", T_max)
    try:
        lines = wait_for_line(process, STARTED, timeout=240)
        node_id, pid = re.search(PLACE, lines[-1]).groups()
        wait_for_line(process, r"^T [\d,]+/.*score -?\d", timeout=120)
        lose(node_id, int(pid))
        stdout, stderr = process.communicate(timeout=300)
    finally:
        process.kill()
    assert process.returncode == 0, stderr
    assert gone(int(pid)), f"the lost replica's process {pid} still runs"
    return "".join(lines) + stdout, stderr


def assert_finished_and_resumes(stdout, stderr, tmp_path, run_dirs, cluster, T_max):
    saved = tf.train.latest_checkpoint(str(tmp_path / "checkpoints" / "lost"))
    assert saved is not None and f"saved checkpoint {saved}" in stdout
    assert checkpoint_T(saved) >= T_max
    (replacement_pid,) = [int(pid) for _, pid in re.findall(REPLACED.removeprefix("^"), stdout)]
    assert gone(replacement_pid), "the replacement's process outlives the run"
    resumed = run_script("async_q_nstep.py", *flags_on(cluster, "--experiment", "lost", *run_dirs),
                         "--T_max", checkpoint_T(saved) + 500, timeout=300)
    assert f"at T = {checkpoint_T(saved):,}" in resumed.stdout


@pytest.mark.slow  # a Ray cluster of two nodes on this machine
def test_a_killed_replica_is_replaced_and_the_run_finishes(cluster, tmp_path, run_dirs):
    stdout, stderr = run_losing_a_replica(cluster, tmp_path, run_dirs, lambda _, pid: os.kill(pid, signal.SIGKILL))
    assert "Traceback" not in stderr and not re.search("^error", stderr, re.MULTILINE), stderr
    lost = re.search(r"actor-learner process 1 \(thread 1\) on Ray node \w+, pid \d+ died .*"
                     r"starting a replacement \(9 more allowed by --ray_max_restarts\)", stdout)
    assert lost, stdout
    assert re.search(REPLACED, stdout, re.MULTILINE), stdout
    assert lost.group(0) in warnings_logged(tmp_path / "summaries" / "lost")  # beside the curves too
    assert_finished_and_resumes(stdout, stderr, tmp_path, run_dirs, cluster, T_max=30_000)


@pytest.mark.slow  # a Ray cluster of two nodes on this machine
def test_a_replica_on_a_lost_node_starts_again_where_there_is_room(cluster, tmp_path, run_dirs):
    node = worker_node(cluster)

    def lose_the_node(*_):
        cluster.remove_node(node, allow_graceful=False)
        cluster.add_node(num_cpus=1)  # the replacement waits for room: here a new machine

    stdout, stderr = run_losing_a_replica(cluster, tmp_path, run_dirs, lose_the_node)
    assert "Traceback" not in stderr and not re.search("^error", stderr, re.MULTILINE), stderr
    assert f"on Ray node {node.node_id}" in stdout and "starting a replacement" in stdout, stdout
    (new_node,) = cluster.worker_nodes
    assert re.search(REPLACED.replace(r"(\w+)", new_node.node_id), stdout, re.MULTILINE), stdout
    assert_finished_and_resumes(stdout, stderr, tmp_path, run_dirs, cluster, T_max=30_000)


@pytest.mark.slow  # a Ray cluster of two nodes on this machine
def test_a_lost_node_with_no_restarts_left_stops_the_run_with_a_line_naming_it_and_saves(
    cluster, tmp_path, run_dirs
):
    node = worker_node(cluster)
    process = start_script("async_q_nstep.py", *flags_on(cluster, "--experiment", "lost", *run_dirs),
                           "--ray_max_restarts", "0", "--T_max", "100000000")
    try:
        wait_for_line(process, r"^T [\d,]+/.*score -?\d", timeout=240)
        cluster.remove_node(node, allow_graceful=False)
        stdout, stderr = process.communicate(timeout=120)
    finally:
        process.kill()
        cluster.add_node(num_cpus=1)  # for any test after this one
    assert process.returncode == 1, stderr
    assert re.search(rf"error: actor-learner process 1 \(thread 1\) on Ray node {node.node_id}, pid \d+ died",
                     stderr), stderr
    assert "Traceback" not in stderr, stderr
    saved = tf.train.latest_checkpoint(str(tmp_path / "checkpoints" / "lost"))
    assert saved is not None and f"saved checkpoint {saved}" in stdout
    assert Path(saved + ".keras").exists()


@pytest.mark.slow  # a Ray cluster of two nodes on this machine
def test_a_replicas_learning_reaches_the_runs_theta_and_T(cluster):
    """No thread trains in this process: whatever theta and T gain came through the exchanges."""
    args = async_q_nstep.parse_args(["--game", "Catch-v0", "--num_actor_threads", "2", "--num_processes", "2",
                                     "--ray_address", cluster.address, "--ray_sync_interval", "0.2"])
    shared = SharedState(args, num_actions=3)
    before = shared.theta.copy()
    connect(cluster.address)
    try:
        replicas = RayActorLearners(shared, [[1]], async_q_nstep.actor_learner_thread, 5)
        replicas.start()
        replicas.wait_until_ready()
        deadline = time.monotonic() + 120
        while shared.T.value < 2000 and time.monotonic() < deadline:
            time.sleep(0.2)
        shared.stop_event.set()
        replicas.join(timeout=90)
    finally:
        ray.shutdown()
    assert not replicas.alive() and replicas.deaths() == []
    assert shared.T.value >= 2000
    assert any(np.abs(now - then).max() > 0 for now, then in zip(shared.theta.arrays, before))
    assert drain(shared.episodes), "the replica's games reach the run"


@pytest.mark.slow  # trains to the Catch pass mark: a few minutes
def test_n_step_q_masters_catch_on_two_nodes_as_on_one_machine(cluster, tmp_path):
    """test_learning's run of n-step Q over 2 processes, the second a replica on the other node."""
    run_script(
        "async_q_nstep.py", *FLAGS_OF["async_q_nstep.py"], "--num_processes", "2", "--ray_address", cluster.address,
        "--seed", "0", "--experiment", "catch",
        "--summary_dir", tmp_path / "summaries", "--checkpoint_dir", tmp_path / "checkpoints", timeout=600,
    )
    assert last_50_mean(tmp_path / "summaries" / "catch") >= PASS_MARK
