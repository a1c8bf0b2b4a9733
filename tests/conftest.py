import os
import re
import selectors
import subprocess
import sys
import time
from pathlib import Path

import pytest
import tensorflow as tf

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from async_runtime.processes import configure_threads  # noqa: E402

# Runs trained in this process (the broken learners, the health checks) get the thread pools a script's
# process gets for its 2 actor-learner threads: TensorFlow fixes them at its first operation, so here.
configure_threads(seed=0, actor_threads=2)

# Tests that start a Ray cluster (Ray's defaults assume one a machine: /tmp/ray, its usual ports) or compare
# all of /dev/shm before and after: the Makefile's workers (pytest-xdist, --dist loadgroup) run them on one
# worker, one at a time.
machine_wide = pytest.mark.xdist_group("machine_wide")


def script_env(**extra):
    return {**os.environ, "PYTHONUNBUFFERED": "1", **extra}


def run_script(script, *args, timeout=300, check=True, env=None):
    """Run one of the project's scripts in a fresh Python process; return the CompletedProcess."""
    completed = subprocess.run(
        [sys.executable, str(ROOT / script), *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
        env=env or script_env(),
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


def start_script(script, *args, env=None):
    """Start one of the project's scripts; stdout and stderr are text pipes."""
    return subprocess.Popen(
        [sys.executable, str(ROOT / script), *map(str, args)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env=env or script_env(),
    )


def wait_for_line(process, pattern, timeout=120):
    """Read the process's stdout until a line matches ``pattern``; return the lines read."""
    lines = []
    selector = selectors.DefaultSelector()
    selector.register(process.stdout, selectors.EVENT_READ)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not selector.select(timeout=deadline - time.monotonic()):
            break
        line = process.stdout.readline()
        if not line:
            break
        lines.append(line)
        if re.search(pattern, line):
            return lines
    process.kill()
    raise AssertionError(f"no line matched {pattern!r}; stdout:\n{''.join(lines)}\nstderr:\n{process.stderr.read()}")


def event_tags(directory):
    """Every summary tag in the TensorBoard event files under ``directory``."""
    tags = set()
    for path in Path(directory).rglob("events.out.tfevents.*"):
        for event in tf.compat.v1.train.summary_iterator(str(path)):
            tags.update(value.tag for value in event.summary.value)
    return tags


def checkpoint_T(path):
    """The global step T stored in the checkpoint at ``path``."""
    return int(tf.train.load_variable(str(path), "T/.ATTRIBUTES/VARIABLE_VALUE"))
