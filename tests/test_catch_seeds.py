"""benchmarks/catch_seeds.py: the learning test's recipe on several seeds, counted against its pass mark."""

import json
import sys

import pytest

from conftest import ROOT, run_script

sys.path.insert(0, str(ROOT / "benchmarks"))
import catch_seeds  # noqa: E402
from test_learning import FLAGS_OF, PASS_MARK  # noqa: E402


@pytest.mark.slow  # two short Catch runs
def test_catch_seeds_runs_the_test_recipe_once_per_seed_and_counts_the_passes(tmp_path):
    output = tmp_path / "seeds.json"
    # 2,000 steps: far too few to learn Catch, so both seeds fail the mark and the exit status says so.
    completed = run_script(
        "benchmarks/catch_seeds.py", "async_q_nstep.py", "--seeds", "3-4", "--output", output,
        "--keep", tmp_path / "kept", "--",
        "--T_max", "2000", check=False, timeout=300,
    )
    assert completed.returncode == 1, completed.stderr
    report = json.loads(output.read_text())
    assert [run["seed"] for run in report["runs"]] == [3, 4]
    assert report["flags"][-2:] == ["--T_max", "2000"] and report["flags"][:-2] == FLAGS_OF["async_q_nstep.py"]
    for run in report["runs"]:
        assert 100 < run["episodes"] < 400, "2,000 steps of a 9-step game: about 220 episodes"
        assert run["last_50_mean"] < PASS_MARK and not run["passed"]
    assert completed.stdout.splitlines()[-1].startswith("async_q_nstep.py --T_max 2000: 0 of 2 seeds passed")
    assert report["provenance"]["command"].startswith("python benchmarks/catch_seeds.py async_q_nstep.py")
    for seed in (3, 4):
        kept = tmp_path / "kept" / f"seed{seed}"
        assert list((kept / "summaries" / "catch").glob("events.out.tfevents.*")), seed
        assert list((kept / "checkpoints" / "catch").glob("*.keras")), seed


def test_catch_seeds_will_not_keep_a_run_over_an_earlier_one(tmp_path, capsys):
    (tmp_path / "seed4").mkdir()
    with pytest.raises(SystemExit) as exit_info:
        catch_seeds.main(["async_a3c.py", "--seeds", "3-5", "--keep", str(tmp_path)])
    assert exit_info.value.code == 2
    assert f"{tmp_path / 'seed4'} exists" in capsys.readouterr().err.strip().splitlines()[-1]


@pytest.mark.parametrize("seeds", ["5-2", "x", "1-x"])
def test_catch_seeds_refuses_seeds_it_cannot_read_with_one_line(seeds, capsys):
    with pytest.raises(SystemExit) as exit_info:
        catch_seeds.main(["async_a3c.py", "--seeds", seeds])
    assert exit_info.value.code == 2
    assert "--seeds" in capsys.readouterr().err.strip().splitlines()[-1]
