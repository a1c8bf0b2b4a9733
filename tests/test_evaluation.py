"""--testing measures an agent as papers do: no-op starts, capped episodes, epsilon-greedy, a JSON report, video."""

import importlib
import json

import pytest

from conftest import run_script

CATCH = ["--game", "Catch-v0", "--experiment", "eval"]


@pytest.fixture
def trained(run_dirs):
    run_script("async_q_nstep.py", *CATCH, "--num_actor_threads", "1", "--T_max", "200", *run_dirs)
    return run_dirs


def test_testing_reports_each_episode_and_the_summary(trained, tmp_path):
    completed = run_script("async_q_nstep.py", *CATCH, "--testing", "--num_eval_episodes", "5", *trained)
    lines = completed.stdout.splitlines()
    episodes = [line for line in lines if line.startswith("episode ")]
    assert [line.split(":")[0] for line in episodes] == [f"episode {i}/5" for i in range(1, 6)]
    assert "epsilon 0.05" in completed.stdout  # DQN's evaluation epsilon is the Q learners' default

    report = json.loads(next((tmp_path / "checkpoints" / "eval").glob("*.eval.json")).read_text())
    scores = [float(line.rsplit(" ", 1)[1]) for line in episodes]
    assert report["scores"] == scores
    assert set(report) >= {"mean", "median", "std", "eval_epsilon", "checkpoint"}
    assert f"median {report['median']:g}" in completed.stdout


@pytest.mark.parametrize(
    ("script", "epsilon"),
    [("async_q_nstep", 0.05), ("async_q_1step", 0.05), ("async_sarsa_1step", 0.05), ("async_a3c", 0.0)],
)
def test_greedy_learners_test_at_epsilon_0_05_and_a3c_which_samples_at_0(script, epsilon):
    assert importlib.import_module(script).parse_args(["--game", "Catch-v0"]).eval_epsilon == epsilon


def test_record_video_writes_one_mp4_per_episode(trained, tmp_path):
    videos = tmp_path / "videos"
    run_script("async_q_nstep.py", *CATCH, "--testing", "--num_eval_episodes", "2", "--record_video", videos, *trained)
    files = sorted(videos.glob("*.mp4"))
    assert len(files) == 2
    assert all(path.stat().st_size > 1000 for path in files)


def test_testing_starts_with_0_to_eval_noop_max_noops_and_cuts_at_the_frame_cap(run_dirs, tmp_path):
    """On Breakout: each episode's no-op frames lie in 0..eval_noop_max and vary; every episode of a
    barely trained agent (it cannot lose 5 lives in 400 frames) is cut at exactly the cap."""
    breakout = ["--game", "BreakoutNoFrameskip-v4", "--experiment", "eval"]
    run_script("async_q_nstep.py", *breakout, "--num_actor_threads", "1", "--T_max", "100", *run_dirs)
    run_script(
        "async_q_nstep.py", *breakout, "--testing", "--num_eval_episodes", "12", "--eval_noop_max", "30",
        "--eval_max_episode_frames", "400", *run_dirs,
    )
    report = json.loads(next((tmp_path / "checkpoints" / "eval").glob("*.eval.json")).read_text())
    assert all(0 <= noops <= 30 for noops in report["noop_frames"])
    assert len(set(report["noop_frames"])) >= 4
    assert report["episode_frames"] == [400] * 12
