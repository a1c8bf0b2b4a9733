"""--testing measures an agent as papers do: no-op starts, capped episodes, epsilon 0.05, a JSON report, video."""

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
    assert "epsilon 0.05" in completed.stdout  # the papers' evaluation epsilon is the default

    report = json.loads(next((tmp_path / "checkpoints" / "eval").glob("*.eval.json")).read_text())
    scores = [float(line.rsplit(" ", 1)[1]) for line in episodes]
    assert report["scores"] == scores
    assert set(report) >= {"mean", "median", "std", "eval_epsilon", "checkpoint"}
    assert f"median {report['median']:g}" in completed.stdout


def test_record_video_writes_one_mp4_per_episode(trained, tmp_path):
    videos = tmp_path / "videos"
    # No no-op starts: 30 no-ops outlast a 9-step Catch episode, and each restart would be filmed.
    run_script("async_q_nstep.py", *CATCH, "--testing", "--num_eval_episodes", "2", "--eval_noop_max", "0",
               "--record_video", videos, *trained)
    files = sorted(videos.glob("*.mp4"))
    assert len(files) == 2
    assert all(path.stat().st_size > 1000 for path in files)
