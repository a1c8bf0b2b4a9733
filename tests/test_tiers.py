"""`make test` and `make test-all` between them run every test: the slow marker splits, it never drops.
`make test-learning`, which CI runs after `make test`, takes some of the slow tier, none of the fast."""

import json
import re
import subprocess
import sys

import pytest

from conftest import ROOT

# Both tests read one collection (a few seconds): on one worker, it is made once.
pytestmark = pytest.mark.xdist_group("tiers")

COLLECT = r"""
import json, sys
import pytest

class Collector:
    def __init__(self):
        self.ids = []

    def pytest_collection_finish(self, session):  # after -m has deselected
        self.ids = [item.nodeid for item in session.items]

tiers = {}
for name, expression in json.loads(sys.argv[1]).items():
    collector = Collector()
    options = ["--collect-only", "-q", "-p", "no:cacheprovider"]
    code = pytest.main(options + (["-m", expression] if expression else []), plugins=[collector])
    if code not in (0, 5):  # 5: nothing selected
        sys.exit(f"collecting the {name} tier failed with exit status {code}")
    tiers[name] = collector.ids
print("TIERS" + json.dumps(tiers))
"""


def marker_expression(target):
    """The -m expression of a make target's recipe, read from the Makefile itself."""
    makefile = (ROOT / "Makefile").read_text()
    recipe = re.search(rf"^{target}:.*\n\t(.*)$", makefile, re.MULTILINE).group(1)
    return re.search(r'-m ("[^"]+"|\S+)', recipe).group(1).strip('"')


def collected_tiers():
    expressions = {
        "full": "", "fast": marker_expression("test"), "slow": "slow", "learning": marker_expression("test-learning"),
    }
    completed = subprocess.run(
        [sys.executable, "-c", COLLECT, json.dumps(expressions)],
        capture_output=True, text=True, cwd=ROOT, timeout=300,
    )
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]
    line = next(line for line in completed.stdout.splitlines() if line.startswith("TIERS"))
    return {name: set(ids) for name, ids in json.loads(line[len("TIERS"):]).items()}


@pytest.fixture(scope="module")
def tiers():
    return collected_tiers()


def test_every_test_is_in_exactly_one_tier_and_every_test_file_is_collected(tiers):
    assert tiers["fast"] | tiers["slow"] == tiers["full"]
    assert not tiers["fast"] & tiers["slow"]
    files_with_tests = {
        path.relative_to(ROOT).as_posix()
        for path in (ROOT / "tests").rglob("*.py")
        if re.search(r"^\s*(async )?def test_", path.read_text(), re.MULTILINE)
    }
    collected_files = {test_id.split("::")[0] for test_id in tiers["full"]}
    assert files_with_tests == collected_files, "a file of tests that pytest does not collect runs in no tier"
    assert len(tiers["fast"]) > len(tiers["slow"]) > 0


def test_ci_s_learning_runs_are_slow_tests_and_cover_every_learner(tiers):
    assert tiers["learning"] <= tiers["slow"]
    learners = {path.name for path in ROOT.glob("async_*.py")}
    # All four found, so the loop below cannot pass on none: a new learner is added here and to the learning runs.
    assert learners == {"async_q_1step.py", "async_q_nstep.py", "async_sarsa_1step.py", "async_a3c.py"}
    for learner in learners:
        assert any(learner in test_id for test_id in tiers["learning"]), f"CI trains no {learner} to the pass mark"
