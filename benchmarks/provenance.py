"""What a measurement ran on, for its JSON: the command, the code, the packages, the machine.

A figure without these cannot be reproduced, or told apart from one made
on other code or other versions (constraints.txt pins what `make` installs).
"""

import importlib.metadata
import os
import platform
import shlex
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from async_runtime.machine import usable_cores  # noqa: E402  the count the scripts pick their threads by
PACKAGES = ["tensorflow", "keras", "ale-py", "gymnasium", "numpy", "numba", "opencv-python-headless"]


def provenance(argv=None):
    """The command (``argv``, default this process's), the commit, package versions and the machine."""
    return {
        "command": shlex.join(["python", *(sys.argv if argv is None else argv)]),
        "commit": commit(),
        "python": platform.python_version(),
        "versions": versions(),
        "machine": platform.machine(),
        "cores": usable_cores(),
        "cpu": cpu_model(),
    }


def commit():
    """HEAD's hash, with "+changes" when tracked files differ from it; None outside a git checkout."""
    def git(*args):
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=False)

    head = git("rev-parse", "HEAD")
    if head.returncode != 0:
        return None
    dirty = git("status", "--porcelain", "--untracked-files=no").stdout.strip()
    return head.stdout.strip() + ("+changes" if dirty else "")


def versions():
    found = {}
    for name in PACKAGES:
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            found[name] = None
    return found


def cpu_model():
    try:
        with open("/proc/cpuinfo") as file:
            for line in file:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None
