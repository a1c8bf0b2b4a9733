"""benchmarks/peers.py: Stable-Baselines3 trained for a budget, each checkpoint tested by our protocol, one report."""

import json
import subprocess
import sys

import pytest

from conftest import ROOT, run_script

sys.path.insert(0, str(ROOT / "benchmarks"))
import report  # noqa: E402


@pytest.mark.slow  # trains Stable-Baselines3 (`make test-all` installs it) for 30 s and tests every checkpoint
# Each algorithm and each vector environment once: PPO's 8 environments over subprocesses start half
# the processes A2C's 16 would.
@pytest.mark.parametrize("algo, vec_env", [("a2c", "dummy"), ("ppo", "subproc")])
def test_peers_train_test_each_checkpoint_by_our_protocol_and_report_as_ours(algo, vec_env, tmp_path):
    output = tmp_path / "run"
    completed = run_script(
        "benchmarks/peers.py", "--output", output, "--algo", algo, "--game", "Catch-v0", "--seed", "2",
        "--vec_env", vec_env, "--minutes", "0.5", "--checkpoint_minutes", "0.2",
        "--eval_episodes", "2", "--final_eval_episodes", "3", "--results", tmp_path / "results", timeout=400,
    )
    learning = json.loads((output / "learning.json").read_text())
    published = tmp_path / "results" / "Catch-v0" / f"sb3_{algo}_seed2.json"
    assert json.loads(published.read_text()) == learning
    assert learning["learner"] == f"sb3_{algo}" and learning["seed"] == 2
    assert learning["command"].startswith("python benchmarks/peers.py --output") and learning["commit"]
    rows = learning["checkpoints"]
    assert len(rows) >= 2  # one every 12 s, and the last at the budget
    assert [row["T"] for row in rows] == sorted({row["T"] for row in rows})
    assert [row["test_episodes"] for row in rows] == [2] * (len(rows) - 1) + [3]
    assert 0 < rows[-1]["minutes"] <= 0.5 + 0.1
    assert all(-1 <= row["test_mean"] <= 1 for row in rows)
    assert rows[-1]["games"] > 100, "Monitor's whole games make the training curve"
    tested = json.loads((output / "kept" / f"{rows[-1]['checkpoint']}.eval.json").read_text())
    assert tested["eval_epsilon"] == 0 and len(tested["scores"]) == 3  # --testing's protocol, as for A3C
    assert {row["test_epsilon"] for row in rows} == {0}
    assert f"T {rows[-1]['T']:>10,}" in completed.stdout
    assert completed.stdout.count("checkpoint at ") == len(rows), "each checkpoint says where training stands"

    (run,) = report.load_runs(str(tmp_path / "results"))  # the tables read it as they read ours
    assert report.LEARNERS[run["learner"]] == f"SB3 {algo.upper()}" and report.recipe_of(run) == f"--vec_env {vec_env}"


def test_peers_refuse_an_unknown_game_with_one_line_before_importing_pytorch(tmp_path, capsys):
    import peers  # in this process: a fresh one would import TensorFlow for one line

    with pytest.raises(SystemExit) as exit_info:
        peers.main(["--output", str(tmp_path / "run"), "--algo", "a2c", "--game", "Breakout-v9"])
    assert exit_info.value.code == 2
    assert "unknown game 'Breakout-v9'" in capsys.readouterr().err.strip().splitlines()[-1]
    assert not (tmp_path / "run").exists()
    assert "torch" not in sys.modules, "make test installs no PyTorch: a flag's error must not need it"


@pytest.mark.slow  # imports Stable-Baselines3 and PyTorch, which only `make test-all` installs
def test_the_choices_peers_offers_are_what_peer_training_trains():
    # In a process of its own: this one must stay free of PyTorch for the test above.
    check = (
        "import sys; sys.path.insert(0, 'benchmarks'); import peers, peer_training; "
        "assert sorted(peers.ALGORITHMS) == sorted(peer_training.ALGORITHMS), 'algorithms'; "
        "assert sorted(peers.VEC_ENVS) == sorted(peer_training.VEC_ENVS), 'vector environments'"
    )
    completed = subprocess.run([sys.executable, "-c", check], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert completed.returncode == 0, completed.stderr
