"""benchmarks/learning.py end to end on Catch: train for a time budget, keep every checkpoint, test each."""

import json

import pytest

from conftest import run_script


def test_learning_benchmark_keeps_and_tests_every_checkpoint(tmp_path):
    output = tmp_path / "run"
    completed = run_script(
        "benchmarks/learning.py", "--output", output, "--minutes", "0.5", "--checkpoint_minutes", "0.1",
        "--eval_episodes", "2", "--final_eval_episodes", "3",
        "--", "async_q_nstep.py", "--game", "Catch-v0", "--num_actor_threads", "1", "--summary_interval", "1",
        timeout=400,
    )
    report = json.loads((output / "learning.json").read_text())
    rows = report["checkpoints"]
    # Checkpoints every 6 s of a 30 s run: more than the script's own 5 are kept.
    assert len(rows) >= 6
    assert len(list((output / "kept").glob("ckpt-*.index"))) == len(rows)
    assert [row["T"] for row in rows] == sorted(row["T"] for row in rows)
    assert [row["test_episodes"] for row in rows] == [2] * (len(rows) - 1) + [3]
    assert all(row["frames"] == row["T"] for row in rows)  # Catch: one frame a step
    assert rows[-1]["minutes"] == pytest.approx(0.5, abs=0.15)
    assert all(-1 <= row["test_mean"] <= 1 and row["training_mean"] is not None for row in rows[1:])
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
