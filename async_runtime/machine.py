"""The cores this process may use, and how many actor-learners and processes a run gets from them.

A container or a job scheduler often gives a process fewer cores than the
machine has: CPU affinity (taskset, cpusets) names the cores it may run on,
a cgroup CPU quota (docker --cpus, Kubernetes limits) caps the time it gets.
os.cpu_count() sees neither.
"""

import math
import os

MIN_ACTOR_LEARNERS = 4


def usable_cores():
    """The fewest of: the cores in this process's affinity, and its cgroup's CPU quota (rounded up)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    quota = cgroup_cpu_quota()
    return max(1, min(cores, math.ceil(quota))) if quota else cores


def cgroup_cpu_quota():
    """The CPU time per wall-clock second that this process's cgroup may use, or None where unlimited or unknown."""
    for path in _cgroup_paths():
        try:
            if path.endswith("cpu.max"):  # cgroup v2: "<quota> <period>" or "max <period>"
                with open(path) as file:
                    quota, period = file.read().split()
                if quota != "max":
                    return int(quota) / int(period)
            else:  # cgroup v1: cpu.cfs_quota_us, -1 when unlimited
                with open(path) as file:
                    quota = int(file.read())
                with open(path.replace("cfs_quota_us", "cfs_period_us")) as file:
                    period = int(file.read())
                if quota > 0:
                    return quota / period
        except (OSError, ValueError):
            continue
    return None


def _cgroup_paths():
    """The quota files of this process's own cgroup first, then those at the cgroup mount's root."""
    own = {}
    try:
        with open("/proc/self/cgroup") as file:
            for line in file:
                _, controllers, path = line.rstrip("\n").split(":", 2)
                own[controllers] = path.lstrip("/")
    except OSError:
        pass
    v2, v1 = own.get("", ""), next((path for names, path in own.items() if "cpu" in names.split(",")), "")
    candidates = [
        os.path.join("/sys/fs/cgroup", v2, "cpu.max"),
        os.path.join("/sys/fs/cgroup/cpu", v1, "cpu.cfs_quota_us"),
        "/sys/fs/cgroup/cpu.max",
        "/sys/fs/cgroup/cpu/cpu.cfs_quota_us",
    ]
    return list(dict.fromkeys(candidates))


def threads_and_processes(cores):
    """The run's shape for ``cores`` usable cores: (actor-learner threads, processes).

    One process per core: past Python's GIL, the fastest shape measured on
    2 cores (n-step Q, frames/s: 2 processes of 1 thread 6,698; of 2 threads
    6,211; 1 process of 4 threads 5,404, of 16 3,574; docs/performance.md).
    At least MIN_ACTOR_LEARNERS actor-learners, whose games decorrelate the
    updates (every measured recipe had 4); so 4 in 2 processes on 2 cores,
    16 in 16 on 16 cores, as the paper's machine ran them.
    """
    return max(MIN_ACTOR_LEARNERS, cores), cores
