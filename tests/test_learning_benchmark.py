"""benchmarks/learning.py: every checkpoint kept, each tested, one report."""

import argparse
import json
import sys

import pytest
import tensorflow as tf

from conftest import ROOT, run_script

sys.path.insert(0, str(ROOT / "benchmarks"))
import learning  # noqa: E402


def test_every_complete_checkpoint_is_kept_though_the_manager_keeps_five(tmp_path):
    """Copied after each save, 8 checkpoints of a manager that keeps 5 all stay, whole."""
    variable = tf.Variable(0.0)
    manager = tf.train.CheckpointManager(tf.train.Checkpoint(v=variable), tmp_path / "run", max_to_keep=5)
    kept = tmp_path / "kept"
    kept.mkdir()
    for step in range(1, 9):
        variable.assign(float(step))
        manager.save(checkpoint_number=step)
        learning.copy_complete_checkpoints(str(tmp_path / "run"), str(kept))
    assert len(manager.checkpoints) == 5
    paths = sorted(learning.kept_checkpoints(str(kept)), key=learning.checkpoint_number)
    assert [learning.checkpoint_number(path) for path in paths] == list(range(1, 9))
    assert [tf.train.load_variable(path, "v/.ATTRIBUTES/VARIABLE_VALUE") for path in paths] == list(range(1, 9))


def test_only_the_checkpoint_proper_is_copied_not_an_export_being_written(tmp_path):
    """The runtime writes ``ckpt-N.partial.keras`` after listing ckpt-N and renames it away: a copy
    that globbed it could find it gone (CI failed so once)."""
    manager = tf.train.CheckpointManager(tf.train.Checkpoint(v=tf.Variable(1.0)), tmp_path / "run", max_to_keep=5)
    manager.save(checkpoint_number=1)
    (tmp_path / "run" / "ckpt-1.partial.keras").write_bytes(b"half written")
    kept = tmp_path / "kept"
    kept.mkdir()
    learning.copy_complete_checkpoints(str(tmp_path / "run"), str(kept))
    assert sorted(file.name for file in kept.iterdir()) == sorted(
        file.name for file in (tmp_path / "run").glob("ckpt-1.*") if "keras" not in file.name
    )
    assert tf.train.load_variable(str(kept / "ckpt-1"), "v/.ATTRIBUTES/VARIABLE_VALUE") == 1.0


def test_evaluate_only_tests_again_the_checkpoints_whose_episodes_or_epsilon_differ(tmp_path):
    """A default's change (A3C's test epsilon, 0.05 to 0) reaches a finished run's checkpoints, and only theirs."""
    tested = {"ckpt-1": (10, 0.05), "ckpt-2": (10, 0.0), "ckpt-3": (30, 0.0)}
    for name, (episodes, epsilon) in tested.items():
        (tmp_path / f"{name}.eval.json").write_text(json.dumps({"episodes": episodes, "eval_epsilon": epsilon}))
    paths = [str(tmp_path / name) for name in ("ckpt-1", "ckpt-2", "ckpt-3", "ckpt-4")]
    options = argparse.Namespace(eval_episodes=10, final_eval_episodes=30)
    # ckpt-3, no longer the last, is owed 10 episodes, not 30
    assert list(learning.still_to_test(paths, options, 0.0)) == [(paths[0], 10), (paths[2], 10), (paths[3], 30)]
    assert list(learning.still_to_test(paths[:3], options, 0.0)) == [(paths[0], 10)]
    assert list(learning.still_to_test(paths[:3], options, 0.05)) == [(paths[1], 10), (paths[2], 30)]


@pytest.mark.slow  # trains for 30 s and tests every checkpoint
def test_learning_benchmark_trains_tests_each_checkpoint_and_reports(tmp_path):
    output = tmp_path / "run"
    completed = run_script(
        "benchmarks/learning.py", "--output", output, "--minutes", "0.5", "--checkpoint_minutes", "0.1",
        "--eval_episodes", "2", "--final_eval_episodes", "3", "--results", tmp_path / "results",
        "--", "async_q_nstep.py", "--game", "Catch-v0", "--num_actor_threads", "1", "--summary_interval", "1",
        "--seed", "3", timeout=400,
    )
    report = json.loads((output / "learning.json").read_text())
    published = tmp_path / "results" / "Catch-v0" / "q_nstep_seed3.json"
    assert json.loads(published.read_text()) == report
    assert (tmp_path / "results" / "Catch-v0" / "q_nstep_seed3.png").exists()
    assert report["learner"] == "q_nstep" and report["seed"] == 3 and report["minutes_budget"] == 0.5
    assert report["command"].startswith("python benchmarks/learning.py --output")  # what made it, and on what
    assert report["commit"] and report["cores"] >= 1
    assert {"tensorflow", "ale-py", "gymnasium", "numpy"} <= report["versions"].keys()
    rows = report["checkpoints"]
    # A checkpoint every 6 s, and the last one at SIGTERM. The budget's 30 s include the script's start-up
    # (10 s or more beside another test on a slow machine): every 12 s could leave the last one alone.
    assert len(rows) >= 2
    assert len(list((output / "kept").glob("ckpt-*.index"))) == len(rows)
    assert [row["T"] for row in rows] == sorted({row["T"] for row in rows})
    assert [row["test_episodes"] for row in rows] == [2] * (len(rows) - 1) + [3]
    assert {row["test_epsilon"] for row in rows} == {0.05}  # the script's own --eval_epsilon
    assert all(row["frames"] == row["T"] for row in rows)  # Catch: one frame a step
    assert 0 < rows[-1]["minutes"] <= 0.5 + 0.1  # stopped at the budget
    assert all(-1 <= row["test_mean"] <= 1 for row in rows)
    assert (output / "learning.png").stat().st_size > 10_000
    assert f"T {rows[-1]['T']:>10,}" in completed.stdout


def test_learning_benchmark_refuses_to_overwrite_a_run(tmp_path):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "learning.json").write_text("{}")
    completed = run_script(
        "benchmarks/learning.py", "--output", tmp_path / "run", "--", "async_q_nstep.py", "--game", "Catch-v0",
        check=False,
    )
    assert completed.returncode == 2
    assert "already holds files" in completed.stderr.strip().splitlines()[-1]


def test_learning_benchmark_refuses_a_non_positive_budget_with_one_line(tmp_path):
    completed = run_script(
        "benchmarks/learning.py", "--output", tmp_path / "run", "--minutes", "0",
        "--", "async_q_nstep.py", "--game", "Catch-v0", check=False,
    )
    assert completed.returncode == 2
    assert "Traceback" not in completed.stderr
    assert completed.stderr.strip().splitlines()[-1].endswith("--minutes must be positive, got 0.0")
    assert not (tmp_path / "run").exists(), "nothing is written before the flags are checked"
