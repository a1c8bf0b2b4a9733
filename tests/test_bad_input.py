"""Bad input gets one clear line and a non-zero exit, and nothing of an existing run is touched."""

import re

import pytest

import async_q_1step
import async_q_nstep
import async_sarsa_1step
from conftest import run_script

GAME = ["--game", "Catch-v0"]


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--game", "BreakotNoFrameskip-v4"], r"unknown game 'BreakotNoFrameskip-v4'.*BreakoutNoFrameskip-v4"),
        ([*GAME, "--num_actor_threads", "0"], r"--num_actor_threads must be positive, got 0"),
        ([*GAME, "--num_processes", "0"], r"--num_processes must be positive, got 0"),
        ([*GAME, "--num_actor_threads", "2", "--num_processes", "3"],
         r"--num_processes 3 needs at least as many --num_actor_threads .*, got 2"),
        ([*GAME, "--ray_address", "auto"], r"--ray_address needs --num_processes 2 or more"),
        ([*GAME, "--num_actor_threads", "2", "--num_processes", "2", "--ray_sync_interval", "0"],
         r"--ray_sync_interval must be positive, got 0"),
        ([*GAME, "--T_max", "-5"], r"--T_max must be positive, got -5"),
        ([*GAME, "--num_steps_Q", "0"], r"--num_steps_Q must be positive"),
        ([*GAME, "--learning_rate", "0"], r"--learning_rate must be in \(0, 1\]"),
        ([*GAME, "--learning_rate", "3"], r"--learning_rate must be in \(0, 1\]"),
        ([*GAME, "--decay_rate_RMSProp", "1.5"], r"--decay_rate_RMSProp must be in \[0, 1\)"),
        ([*GAME, "--epsilon_RMSProp", "-1"], r"--epsilon_RMSProp must be positive"),
        ([*GAME, "--gamma", "0"], r"--gamma must be in \(0, 1\]"),
        ([*GAME, "--gamma", "1.01"], r"--gamma must be in \(0, 1\]"),
        ([*GAME, "--final_epsilon_choices", "0.1", "0.2"], r"has 2 values but .* has 3"),
        ([*GAME, "--final_epsilon_choice_probabilities", "0.5", "0.3", "0.3"], r"sum to 1"),
        ([*GAME, "--final_epsilon_choices", "0.1", "2", "0.5"], r"exploration rates must be in \[0, 1\]"),
        ([*GAME, "--eval_epsilon", "-0.1"], r"exploration rates must be in \[0, 1\]"),
        ([*GAME, "--noop_max", "-1"], r"--noop_max must be 0 or more, got -1"),
        ([*GAME, "--eval_noop_max", "-3"], r"--eval_noop_max must be 0 or more, got -3"),
        ([*GAME, "--env_backend", "ale_vector"], r"cannot run Catch-v0"),
        ([*GAME, "--num_actor_threads", "many"], r"invalid int value: 'many'"),
    ],
)
def test_flags_are_validated_with_one_line(flags, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        async_q_nstep.parse_args(flags)
    assert exit_info.value.code == 2
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert re.search(message, error), error


@pytest.mark.parametrize("script", [async_q_1step, async_sarsa_1step], ids=["1-step Q", "Sarsa"])
def test_the_one_step_scripts_validate_their_own_flag(script, capsys):
    with pytest.raises(SystemExit):
        script.parse_args([*GAME, "--async_update_frequency", "-1"])
    assert "--async_update_frequency must be positive" in capsys.readouterr().err


def assert_one_line_error(completed, message):
    assert completed.returncode == 2, completed.stderr
    assert "Traceback" not in completed.stderr
    assert re.search(message, completed.stderr.strip().splitlines()[-1]), completed.stderr


def test_unwritable_directory(tmp_path):
    blocked = tmp_path / "file"
    blocked.write_text("not a directory")
    completed = run_script(
        "async_q_nstep.py", *GAME, "--summary_dir", blocked, "--checkpoint_dir", tmp_path, check=False
    )
    assert_one_line_error(completed, r"cannot write to .*file/async_q_nstep")


def test_a_ray_address_with_no_cluster_there(run_dirs):
    completed = run_script("async_q_nstep.py", *GAME, "--num_actor_threads", "2", "--num_processes", "2",
                           "--ray_address", "127.0.0.1:9", *run_dirs, check=False, timeout=180)
    assert_one_line_error(completed, r"--ray_address 127.0.0.1:9: cannot join a Ray cluster there")


def test_testing_without_a_checkpoint(run_dirs):
    completed = run_script("async_q_nstep.py", *GAME, "--testing", *run_dirs, check=False)
    assert_one_line_error(completed, r"--testing needs a checkpoint")


def test_testing_with_a_corrupt_checkpoint(tmp_path, run_dirs):
    bogus = tmp_path / "ckpt-1"
    (tmp_path / "ckpt-1.index").write_bytes(b"not a checkpoint")
    completed = run_script("async_q_nstep.py", *GAME, "--testing", "--checkpoint_file", bogus, *run_dirs, check=False)
    assert_one_line_error(completed, r"cannot read checkpoint .*ckpt-1")


def test_a_checkpoint_for_another_game_is_refused_and_left_alone(tmp_path, run_dirs):
    # Catch has 3 actions, Breakout 4.
    run_script("async_q_nstep.py", *GAME, "--num_actor_threads", "1", "--T_max", "50", "--experiment", "x", *run_dirs)
    checkpoints = tmp_path / "checkpoints" / "x"
    before = {path.name: path.stat().st_mtime_ns for path in checkpoints.iterdir()}

    for extra in ([], ["--testing"]):
        completed = run_script(
            "async_q_nstep.py", "--game", "BreakoutNoFrameskip-v4", "--experiment", "x", *extra, *run_dirs, check=False
        )
        assert completed.returncode == 2, completed.stderr
        assert "made for a game with 3 actions; this game has 4" in completed.stderr
    assert {path.name: path.stat().st_mtime_ns for path in checkpoints.iterdir()} == before

