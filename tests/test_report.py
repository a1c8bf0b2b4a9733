"""The README's results section is what the files in results/ give: generated, never typed."""

import json
import sys

import pytest
from matplotlib.image import imread

from conftest import ROOT

sys.path.insert(0, str(ROOT / "benchmarks"))
import report  # noqa: E402


def test_the_readmes_results_section_is_what_results_gives():
    assert report.main(["--check"]) == 0, "run: python benchmarks/report.py"


def checkpoint(minutes, score, epsilon, frames_per_minute=300_000):
    frames = int(minutes * frames_per_minute)
    return {"checkpoint": f"ckpt-{frames // 4}", "T": frames // 4, "frames": frames, "minutes": minutes,
            "games": 10, "training_mean": score, "test_epsilon": epsilon, "test_mean": score, "test_std": 1.0,
            "test_median": score, "test_episodes": 10}


def write_run(results, game, learner, seed, scores, recipe="", epsilon=0.05):
    """A run as benchmarks/learning.py writes it, with checkpoints every 10 minutes."""
    path = results / game / f"{learner}_seed{seed}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    flags = f"--game {game} {recipe} --seed {seed}".replace("  ", " ")
    path.write_text(json.dumps({
        "game": game, "script": f"async_{learner}.py", "learner": learner, "seed": seed, "recipe": flags,
        "command": f"python benchmarks/learning.py -- async_{learner}.py {flags}", "commit": "abc123",
        "checkpoints": [checkpoint(10.0 * (i + 1) - 0.1, score, epsilon) for i, score in enumerate(scores)],
    }))


@pytest.fixture
def results(tmp_path, monkeypatch):
    monkeypatch.setattr(report, "RESULTS", str(tmp_path))
    return tmp_path


def rows_of(section):
    return [line for line in section.splitlines() if line.startswith("| ") and not line.startswith("| game")]


def test_seeds_of_one_recipe_are_one_row_with_their_mean_and_range(results):
    for seed, scores in enumerate([[1, 2, 3, 4, 5, 6], [3, 4, 5, 6, 7, 10], [2, 3, 4, 5, 6, 8]]):
        write_run(results, "BreakoutNoFrameskip-v4", "a3c", seed, scores)
    write_run(results, "BreakoutNoFrameskip-v4", "q_nstep", 0, [1, 1, 1, 1, 1, 1], recipe="--learning_rate 1e-3")
    write_run(results, "PongNoFrameskip-v4", "a3c", 0, [-21, -20])
    (results / "archive").mkdir()
    (results / "archive" / "old.json").write_text("{}")  # never read
    runs = report.load_runs(str(results))
    assert len(runs) == 5
    rows = rows_of(report.section(runs))
    # No checkpoint lies within the slack of 15 minutes (9.9 and 19.9): no figure, rather than an invented one.
    assert rows[0] == ("| BreakoutNoFrameskip-v4 | A3C | defaults | 0.05 | 0, 1, 2 | - | 4.0 (3.0 to 5.0) "
                       "| 8.0 (6.0 to 10.0) | ~10 | 8.0 (6.0 to 10.0) (60) | 5,000 |")
    assert rows[1].startswith("| BreakoutNoFrameskip-v4 | n-step Q | `--learning_rate 1e-3` | 0.05 | 0 | - | 1.0 | 1.0 |")
    assert rows[2] == "| PongNoFrameskip-v4 | A3C | defaults | 0.05 | 0 | - | - | - | - | -20.0 (20) | 5,000 |"


def test_runs_of_two_lengths_share_the_minutes_columns_and_each_length_has_its_end(results):
    write_run(results, "PongNoFrameskip-v4", "q_nstep", 0, [-20, -15, -10, 0, 5, 10, 12, 14, 15, 16, 17, 18])
    write_run(results, "PongNoFrameskip-v4", "q_nstep", 1, [-20, -18, -12, -5, 0, 6])
    (row,) = rows_of(report.section(report.load_runs(str(results))))
    assert "| 0, 1 | - | -11.0 (-12.0 to -10.0) | 8.0 (6.0 to 10.0) |" in row
    assert "| 6.0 (60); 18.0 (120) |" in row


def test_seeds_tested_at_another_epsilon_are_another_row(results):
    """A mean over seeds never mixes two tests: a run tested at 0.05 stays apart from one tested at 0."""
    write_run(results, "PongNoFrameskip-v4", "a3c", 0, [10, 15, 19, 19, 19, 19], epsilon=0.0)
    write_run(results, "PongNoFrameskip-v4", "a3c", 1, [5, 10, 14, 14, 14, 14], epsilon=0.05)
    write_run(results, "PongNoFrameskip-v4", "a3c", 2, [8, 12, 15, 15, 15, 15], epsilon=0.0)
    rows = rows_of(report.section(report.load_runs(str(results))))
    assert [row.split(" | ")[3:5] for row in rows] == [["0", "0, 2"], ["0.05", "1"]]
    assert rows[0].split(" | ")[7] == "17.0 (15.0 to 19.0)"


def test_a_run_without_one_test_epsilon_is_named_in_one_line(results):
    write_run(results, "PongNoFrameskip-v4", "a3c", 0, [10, 15])
    path = results / "PongNoFrameskip-v4" / "a3c_seed0.json"
    run = json.loads(path.read_text())
    run["checkpoints"][0]["test_epsilon"] = 0.0  # half tested again
    path.write_text(json.dumps(run))
    with pytest.raises(report.ReportError, match=r"a3c_seed0.json: its checkpoints' test epsilons are \['0.0', '0.05'\]"):
        report.load_runs(str(results))
    del run["checkpoints"][0]["test_epsilon"]  # tested before the JSON named its epsilon
    path.write_text(json.dumps(run))
    with pytest.raises(report.ReportError, match="test them again with --evaluate_only"):
        report.load_runs(str(results))


def test_a_checkpoint_near_the_quarter_hour_counts_for_it(results):
    write_run(results, "PongNoFrameskip-v4", "a3c", 0, [])
    path = results / "PongNoFrameskip-v4" / "a3c_seed0.json"
    run = json.loads(path.read_text())
    run["checkpoints"] = [checkpoint(14.0, -20.0, 0.0), checkpoint(29.9, -15.0, 0.0), checkpoint(57.5, 3.0, 0.0)]
    path.write_text(json.dumps(run))
    assert rows_of(report.section(report.load_runs(str(results))))[0].split(" | ")[5:8] == ["-20.0", "-15.0", "3.0"]


def test_the_section_names_each_runs_command_and_the_figure_draws_each_game(results, tmp_path):
    write_run(results, "BreakoutNoFrameskip-v4", "a3c", 0, [1, 2])
    write_run(results, "BreakoutNoFrameskip-v4", "a3c", 1, [2, 4])
    write_run(results, "PongNoFrameskip-v4", "q_nstep", 0, [-21, -19])
    runs = report.load_runs(str(results))
    section = report.section(runs)
    assert all(run["command"] in section for run in runs)
    report.figure(runs, str(tmp_path / "figure.png"))
    assert imread(tmp_path / "figure.png").shape[1] > 600


def test_rewrite_replaces_only_between_the_markers_and_needs_them_once():
    text = f"intro\n{report.BEGIN}\nold table\n{report.END}\nafter\n"
    assert report.rewrite(text, "new\n") == f"intro\n{report.BEGIN}\nnew\n{report.END}\nafter\n"
    with pytest.raises(report.ReportError, match="exactly one"):
        report.rewrite("no markers", "new\n")


def test_a_file_that_is_not_a_learning_run_is_named_in_one_line(results):
    (results / "PongNoFrameskip-v4").mkdir()
    (results / "PongNoFrameskip-v4" / "notes.json").write_text('{"game": "Pong"}')
    with pytest.raises(report.ReportError, match="notes.json: no checkpoints, command, learner, recipe, seed"):
        report.load_runs(str(results))
