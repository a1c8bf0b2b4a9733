"""Threads and processes follow the cores a run may use: affinity and cgroup quotas respected, the choice printed."""

import os

import pytest

import async_a3c
import async_q_nstep
from async_runtime import machine
from conftest import run_script


@pytest.mark.parametrize("cores, shape", [(1, (4, 1)), (2, (4, 2)), (4, (4, 4)), (16, (16, 16))])
def test_one_process_per_core_and_at_least_four_actor_learners(cores, shape):
    assert machine.threads_and_processes(cores) == shape


def quota_files(tmp_path, monkeypatch, **files):
    paths = []
    for name, text in files.items():
        path = tmp_path / name.replace("__", ".")
        path.write_text(text)
        paths.append(str(path))
    if "cpu__cfs_quota_us" in files:
        (tmp_path / "cpu.cfs_period_us").write_text("100000\n")
    monkeypatch.setattr(machine, "_cgroup_paths", lambda: paths)


@pytest.mark.parametrize(
    "files, quota",
    [
        ({"cpu__max": "150000 100000\n"}, 1.5),  # cgroup v2, docker --cpus 1.5
        ({"cpu__max": "max 100000\n"}, None),
        ({"cpu__cfs_quota_us": "300000\n"}, 3.0),  # cgroup v1
        ({"cpu__cfs_quota_us": "-1\n"}, None),
        ({}, None),
    ],
    ids=["v2", "v2 unlimited", "v1", "v1 unlimited", "none"],
)
def test_the_cgroup_quota_is_read_in_either_version(files, quota, tmp_path, monkeypatch):
    quota_files(tmp_path, monkeypatch, **files)
    assert machine.cgroup_cpu_quota() == quota


def test_usable_cores_are_the_fewest_of_affinity_and_quota(tmp_path, monkeypatch):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2, 3})
    quota_files(tmp_path, monkeypatch, cpu__max="150000 100000\n")
    assert machine.usable_cores() == 2  # 1.5 cores of time: two threads can use them
    quota_files(tmp_path, monkeypatch, cpu__max="max 100000\n")
    assert machine.usable_cores() == 4
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {3})
    assert machine.usable_cores() == 1


@pytest.mark.parametrize("script", [async_q_nstep, async_a3c], ids=["n-step Q", "A3C"])
def test_flags_left_out_are_picked_from_the_cores(script, monkeypatch):
    monkeypatch.setattr(machine, "usable_cores", lambda: 8)
    args = script.parse_args(["--game", "Catch-v0"])
    assert (args.num_actor_threads, args.num_processes, args.picked_for_cores) == (8, 8, 8)
    args = script.parse_args(["--game", "Catch-v0", "--num_actor_threads", "3"])
    assert (args.num_actor_threads, args.num_processes, args.picked_for_cores) == (3, 1, None)
    args = script.parse_args(["--game", "Catch-v0", "--num_processes", "2"])
    assert (args.num_actor_threads, args.num_processes, args.picked_for_cores) == (4, 2, None)


def test_the_picked_shape_is_printed_at_start_up(run_dirs):
    completed = run_script("async_q_nstep.py", "--game", "Catch-v0", "--T_max", "400", *run_dirs)
    threads, processes = machine.threads_and_processes(machine.usable_cores())
    in_processes = f" in {processes} processes" if processes > 1 else ""
    assert (
        f"{threads} actor-learner threads{in_processes} (picked for {machine.usable_cores()} usable cores"
        in completed.stdout
    )
