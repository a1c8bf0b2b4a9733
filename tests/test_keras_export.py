"""The .keras file beside each checkpoint: a plain Keras model that plays the game with gymnasium's own wrappers."""

import json
import re
import subprocess
import sys

import numpy as np

import async_q_nstep
from async_runtime.checkpoints import CHECKPOINTS_KEPT, Checkpoints
from async_runtime.shared_state import SharedState
from build_model import q_values_numpy
from conftest import ROOT

README_PATH = "/tmp/checkpoints/pong/ckpt-20000000.keras"


def readme_snippet():
    """The README's code under "Using a trained network elsewhere", as a user would paste it."""
    readme = (ROOT / "README.md").read_text()
    section = readme.split("### Using a trained network elsewhere", 1)[1]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_the_exported_network_plays_pong_in_plain_keras_with_the_readme_snippet(tmp_path):
    args = async_q_nstep.parse_args(["--game", "PongNoFrameskip-v4"])
    shared = SharedState(args, num_actions=6)
    path = Checkpoints(shared, str(tmp_path / "checkpoints")).save()
    snippet = readme_snippet()
    assert README_PATH in snippet
    report = tmp_path / "report.json"
    play = tmp_path / "play.py"
    play.write_text(
        "import json\nimport sys\n"
        + snippet.replace(README_PATH, f"{path}.keras")
        + f"""
first, _ = env.reset(seed=0)
first = np.moveaxis(first, 0, -1)
np.save({str(tmp_path / "first.npy")!r}, first)
project = [name for name in ("async_runtime", "build_model", "atari_wrapper") if name in sys.modules]
json.dump({{"score": score, "q": model(first[None])[0].numpy().tolist(), "project": project}}, open({str(report)!r}, "w"))
"""
    )
    # A fresh interpreter in another folder: nothing of the project on its path.
    completed = subprocess.run(
        [sys.executable, str(play)], cwd=tmp_path, capture_output=True, text=True, timeout=600
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    result = json.loads(report.read_text())
    assert result["project"] == []
    assert re.search(r"^score -?\d+$", completed.stdout, re.M), completed.stdout
    assert -21 <= result["score"] <= 21 and result["score"] == float(completed.stdout.split()[-1])
    # Its Q-values are the trained network's own on the state gymnasium's wrappers gave.
    expected = q_values_numpy(shared.theta.arrays, np.load(tmp_path / "first.npy"))
    np.testing.assert_allclose(result["q"], expected, rtol=1e-4, atol=1e-5)


def test_each_kept_checkpoint_has_its_keras_file_and_only_those(tmp_path):
    args = async_q_nstep.parse_args(["--game", "Catch-v0"])
    shared = SharedState(args, num_actions=3)
    checkpoints = Checkpoints(shared, str(tmp_path))
    for _ in range(CHECKPOINTS_KEPT + 2):
        shared.T.add(1)
        checkpoints.save()
    exported = sorted(path.name for path in tmp_path.glob("*.keras"))
    assert exported == sorted(f"{path.rsplit('/', 1)[1]}.keras" for path in checkpoints.manager.checkpoints)
    assert len(exported) == CHECKPOINTS_KEPT
