import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def run_script(script, *args, timeout=300, check=True):
    """Run one of the project's scripts in a fresh Python process; return the CompletedProcess."""
    completed = subprocess.run(
        [sys.executable, str(ROOT / script), *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    if check and completed.returncode != 0:
        raise AssertionError(
            f"{script} exited {completed.returncode}\nstdout:\n{completed.stdout}\nstderr:\n{completed.stderr}"
        )
    return completed


@pytest.fixture
def run_dirs(tmp_path):
    """--summary_dir and --checkpoint_dir flags pointing into a fresh temporary folder."""
    return ["--summary_dir", tmp_path / "summaries", "--checkpoint_dir", tmp_path / "checkpoints"]
