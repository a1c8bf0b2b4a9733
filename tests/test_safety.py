"""Training survives what happens to long runs: kill -9, Ctrl-C, SIGTERM, a failing thread, divergence.

Every case runs a real training process (or the real driver, for divergence)
on Catch-v0, whose emulator starts in well under a second.
"""

import os
import re
import signal
import textwrap
import time

import numpy as np
import pytest
import tensorflow as tf

import async_q_nstep
from async_runtime import checkpoints, driver
from async_runtime.actor_learner import ActorLearner
from async_runtime.checkpoints import Checkpoints
from async_runtime.errors import CheckpointMismatch
from async_runtime.shared_state import SharedState
from build_model import NETWORK_VERSION, build_actor_critic_network, build_network
from conftest import ROOT, checkpoint_T, event_tags, run_script, script_env, start_script, wait_for_line

CATCH = ["--game", "Catch-v0", "--num_actor_threads", "2", "--T_max", "100000000", "--summary_interval", "1"]


@pytest.mark.slow  # kills and resumes a run again and again
def test_kill_9_at_random_moments_resumes_from_the_latest_checkpoint(tmp_path, run_dirs):
    """Checkpoints every 0.2 s, so some kills land during a write; each restart goes on from the last one."""
    checkpoints = tmp_path / "checkpoints" / "crash"
    rng = np.random.default_rng(0)
    last_T = 0
    for attempt in range(3):
        process = start_script("async_q_nstep.py", *CATCH, "--experiment", "crash",
                               "--checkpoint_interval", "0.2", *run_dirs)
        lines = wait_for_line(process, r"^T [\d,]+/")
        if attempt > 0:
            resumed = [line for line in lines if line.startswith("resuming")]
            assert resumed and f"at T = {last_T:,}" in resumed[0], "".join(lines)
        time.sleep(rng.uniform(0.5, 2.0))
        process.kill()  # SIGKILL: no handler, no final checkpoint
        process.wait(timeout=30)
        latest = tf.train.latest_checkpoint(str(checkpoints))
        assert latest is not None
        T = checkpoint_T(latest)
        assert T > last_T
        last_T = T
    # The last checkpoint left by a kill loads as a whole.
    shared = SharedState(async_q_nstep.parse_args(["--game", "Catch-v0"]), num_actions=3)
    assert Checkpoints(shared, str(checkpoints)).restore_latest() == latest
    assert shared.T.value == last_T
    # ...and the restored target network is the one the bootstrap uses.
    target_network = build_network(num_actions=3, portable=True)  # the layout checkpoints are saved in
    tf.train.Checkpoint(target_network=target_network).restore(latest).expect_partial().assert_existing_objects_matched()
    state = np.random.default_rng(1).integers(0, 256, (1, 84, 84, 4), dtype=np.uint8)
    learner = ActorLearner(0, shared, max_segment_steps=5)
    np.testing.assert_allclose(
        learner.max_target_q(state), target_network(state).numpy().max(axis=1), rtol=1e-5, atol=1e-7
    )


def test_a_checkpoint_restores_theta_theta_minus_the_rmsprop_statistics_and_T(tmp_path):
    args = async_q_nstep.parse_args(["--game", "Catch-v0", "--learning_rate", "0.01"])
    shared = SharedState(args, num_actions=3)
    learner = ActorLearner(0, shared, max_segment_steps=5)
    states = np.random.default_rng(0).integers(0, 256, (5, 84, 84, 4), dtype=np.uint8)
    learner.learn(states, [0, 1, 2, 1, 0], np.full(5, 10.0, np.float32))
    shared.update_target()
    learner.learn(states, [2, 2, 0, 1, 1], np.full(5, -5.0, np.float32))  # theta moves on
    shared.T.add(1234)
    saved = [[array.copy() for array in arrays]
             for arrays in (shared.theta.arrays, shared.target.arrays, shared.optimizer.mean_squares)]
    path = Checkpoints(shared, str(tmp_path)).save()

    restored = SharedState(args, num_actions=3)  # freshly initialised
    assert Checkpoints(restored, str(tmp_path)).restore_latest() == path
    assert restored.T.value == 1234
    for before, after in zip(saved, (restored.theta.arrays, restored.target.arrays, restored.optimizer.mean_squares)):
        for expected, actual in zip(before, after):
            np.testing.assert_array_equal(actual, expected)
    assert not np.array_equal(saved[0][-1], saved[1][-1]), "theta and theta-minus differ, so both were checked"


def test_a_checkpoint_of_another_network_version_is_refused_for_training_and_testing(tmp_path, monkeypatch):
    """Same shapes, other arithmetic: loading it would resume (or test) weights the network never learned."""
    args = async_q_nstep.parse_args(["--game", "Catch-v0"])
    shared = SharedState(args, num_actions=3)
    network = build_network(num_actions=3)
    # Before versions were recorded (before frames were centred), a checkpoint held the networks and T only.
    unversioned_parts = tf.train.Checkpoint(global_network=network, T=tf.Variable(0, dtype=tf.int64))
    unversioned = tf.train.CheckpointManager(unversioned_parts, str(tmp_path / "old"), max_to_keep=5).save()
    monkeypatch.setattr(checkpoints, "NETWORK_VERSION", NETWORK_VERSION + 1)
    newer = Checkpoints(shared, str(tmp_path / "newer")).save()
    monkeypatch.undo()

    for path, version in ((unversioned, 1), (newer, NETWORK_VERSION + 1)):
        message = rf"made for network version {version}, this code's is {NETWORK_VERSION}"
        with pytest.raises(CheckpointMismatch, match=message):
            Checkpoints(SharedState(args, num_actions=3), os.path.dirname(path)).restore_latest()
        with pytest.raises(CheckpointMismatch, match=message):  # what --testing calls
            checkpoints.restore(tf.train.Checkpoint(global_network=network), path, network)
    current = Checkpoints(shared, str(tmp_path / "current")).save()
    portable = build_network(num_actions=3, portable=True)  # the layout checkpoints are saved in
    checkpoints.restore(tf.train.Checkpoint(global_network=portable), current, portable)


def test_a_checkpoint_of_another_layout_is_refused_not_left_unloaded(tmp_path):
    """Same version and shapes, weights named by other places in the Keras graph: TensorFlow would only
    warn and leave the network as initialised, so --testing would play an untrained network."""
    args = async_q_nstep.parse_args(["--game", "Catch-v0"])
    path = Checkpoints(SharedState(args, num_actions=3), str(tmp_path)).save()
    other_layout = build_network(num_actions=3)  # its backgrounds by a layer of ours, not Keras ops
    with pytest.raises(CheckpointMismatch, match="another layout of the network"):
        checkpoints.restore(tf.train.Checkpoint(global_network=other_layout), path, other_layout)


# Where a checkpoint of each network version keeps its weights, shapes for 6 actions: Keras names them by
# their operation's place in the graph, so a new operation before a layer moves them.
TORSO_LAYOUT = [(13, "_kernel", [8, 8, 4, 16]), (13, "bias", [16]), (14, "_kernel", [4, 4, 16, 32]),
                (14, "bias", [32]), (16, "_kernel", [2592, 256]), (16, "bias", [256])]
CHECKPOINT_LAYOUTS = {
    3: {
        "q": [*TORSO_LAYOUT, (17, "_kernel", [256, 6]), (17, "bias", [6])],
        "actor_critic": [*TORSO_LAYOUT, (17, "_kernel", [256, 6]), (17, "bias", [6]),
                         (18, "_kernel", [256, 1]), (18, "bias", [1])],
    },
}


def checkpoint_layout(network, tmp_path):
    path = tf.train.Checkpoint(global_network=network).save(str(tmp_path / "layout"))
    pattern = re.compile(r"global_network/_operations/(\d+)/(\w+)/\.ATTRIBUTES/VARIABLE_VALUE")
    return sorted(
        (int(match[1]), match[2], shape)
        for match, shape in ((pattern.fullmatch(name), shape) for name, shape in tf.train.list_variables(path))
        if match
    )


def test_a_network_version_names_one_checkpoint_layout(tmp_path):
    """Checkpoints of one NETWORK_VERSION must restore into each other's code: a graph change that moves
    the weights (see the test above) must come with a new version, or every older checkpoint is refused."""
    pinned = CHECKPOINT_LAYOUTS.get(NETWORK_VERSION)
    assert pinned, f"pin network version {NETWORK_VERSION}'s checkpoint layout in CHECKPOINT_LAYOUTS"
    bump = "the checkpoint layout moved: raise build_model.NETWORK_VERSION and pin the new layout here"
    assert checkpoint_layout(build_network(6, portable=True), tmp_path / "q") == pinned["q"], bump
    actor_critic = build_actor_critic_network(6, portable=True)
    assert checkpoint_layout(actor_critic, tmp_path / "ac") == pinned["actor_critic"], bump
    # The layout training uses in memory puts its weights elsewhere: a change of that kind is caught.
    assert checkpoint_layout(build_network(6), tmp_path / "other") != pinned["q"]


@pytest.mark.parametrize("signum, status", [(signal.SIGINT, 0), (signal.SIGTERM, 128 + signal.SIGTERM)])
def test_a_signal_stops_the_threads_saves_and_flushes(signum, status, tmp_path, run_dirs):
    process = start_script("async_q_nstep.py", *CATCH, "--experiment", "stop", *run_dirs)
    wait_for_line(process, r"^T [\d,]+/.*score -?\d")  # an episode has been logged
    process.send_signal(signum)
    stdout, stderr = process.communicate(timeout=20)
    assert process.returncode == status, stderr
    assert "Traceback" not in stderr
    saved = [line for line in stdout.splitlines() if line.startswith("saved checkpoint")]
    assert saved, stdout
    latest = tf.train.latest_checkpoint(str(tmp_path / "checkpoints" / "stop"))
    assert f"at T = {checkpoint_T(latest):,}" in saved[0]
    assert {"episode/score", "charts/frames_per_second"} <= event_tags(tmp_path / "summaries" / "stop")


def test_a_second_ctrl_c_quits_at_once(run_dirs):
    process = start_script("async_q_nstep.py", *CATCH, "--experiment", "impatient", *run_dirs)
    wait_for_line(process, r"^T [\d,]+/")
    process.send_signal(signal.SIGINT)
    wait_for_line(process, r"^SIGINT: stopping")
    process.send_signal(signal.SIGINT)
    process.communicate(timeout=10)
    assert process.returncode == 128 + signal.SIGINT


FAULTY_ENV = textwrap.dedent(
    """
    # Loaded at interpreter start (PYTHONPATH): a Catch whose third instance,
    # the second actor-learner's emulator, fails after 300 steps.
    import gymnasium as gym
    import catch

    class FaultyCatch(catch.CatchEnv):
        instances = 0

        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            FaultyCatch.instances += 1
            self.doomed = FaultyCatch.instances == 3
            self.steps = 0

        def step(self, action):
            self.steps += 1
            if self.doomed and self.steps > 300:
                raise RuntimeError("injected emulator failure")
            return super().step(action)

    gym.register(id="FaultyCatch-v0", entry_point=FaultyCatch)
    """
)


def test_a_failing_thread_stops_the_run_with_its_traceback(tmp_path, run_dirs):
    (tmp_path / "sitecustomize.py").write_text(FAULTY_ENV)
    completed = run_script(
        "async_q_nstep.py", "--game", "FaultyCatch-v0", "--num_actor_threads", "2", "--T_max", "100000000",
        "--experiment", "faulty", *run_dirs,
        check=False, timeout=120, env=script_env(PYTHONPATH=f"{tmp_path}:{ROOT}"),
    )
    assert completed.returncode == 1
    assert "error: actor-learner thread 1 failed:" in completed.stderr
    assert completed.stderr.count("RuntimeError: injected emulator failure") == 1
    assert "saved checkpoint" in completed.stdout  # the networks were sound


def poisoned_learner(learner, shared, args):
    """The real loop, until the last thread (in a worker process, with 2 processes) makes one
    weight of theta NaN at T >= 3,000. At module level: a worker process imports it."""
    learn = learner.learn

    def learn_then_poison(states, actions, targets):
        learn(states, actions, targets)
        if shared.T.value >= 3000 and learner.index == args.num_actor_threads - 1:
            shared.theta.arrays[-1][:] = np.nan

    learner.learn = learn_then_poison
    async_q_nstep.actor_learner_thread(learner, shared, args)


@pytest.mark.parametrize("processes", ["1", pytest.param("2", marks=pytest.mark.slow)])
def test_divergence_stops_the_run_and_keeps_the_last_good_checkpoint(processes, tmp_path, capsys):
    args = async_q_nstep.parse_args(
        ["--game", "Catch-v0", "--num_actor_threads", "2", "--num_processes", processes, "--T_max", "100000000",
         "--summary_interval", "1", "--checkpoint_interval", "1", "--experiment", "nan",
         "--summary_dir", str(tmp_path / "summaries"), "--checkpoint_dir", str(tmp_path / "checkpoints")]
    )

    status = driver.train(args, poisoned_learner, args.num_steps_Q, async_q_nstep.model(args))
    assert status == 1
    assert "training diverged" in capsys.readouterr().err
    latest = tf.train.latest_checkpoint(str(tmp_path / "checkpoints" / "nan"))
    assert latest is not None and checkpoint_T(latest) <= 3000 + 10
    reader = tf.train.load_checkpoint(latest)
    for name in reader.get_variable_to_shape_map():
        if name.startswith("global_network/"):
            assert np.all(np.isfinite(reader.get_tensor(name)))
