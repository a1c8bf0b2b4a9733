"""Emulator frames per second of the learners, against the emulators alone, and of real runs.

For each thread count, in one run, each figure from a fresh process (the
learners size TensorFlow's thread pools by thread count, once per process):

(a) envs only: the threads step the same environments the learners use,
    with random actions: the ceiling a learner could reach;
(b) each learner's loop (``actor_learner_thread`` of async_q_nstep.py,
    async_q_1step.py, async_sarsa_1step.py, async_a3c.py) on its threads.

Then real runs: async_q_nstep.py as a user starts it, with its driver,
TensorBoard logging and all, on 1 to --processes processes: each figure is
the rate the run prints over a summary interval, and the CPU cores its
processes kept busy meanwhile (from /proc), so frames per CPU-second tell
what more cores would give.

Compilation and warm-up are excluded; each figure is the median of several
timed windows. Prints markdown tables, with each learner's ratio to (a), and
writes the same as JSON with the CPU count and package versions:

    python benchmarks/throughput.py                 # 1, 2, 4, 8, 16 threads; real runs on 1 and 2 processes
    python benchmarks/throughput.py --quick         # 2 threads, 3 windows of 2 s; real runs on 1 and 2
    python benchmarks/throughput.py --ray ...       # and the runs of 2 or more processes again, on Ray
"""

import argparse
import concurrent.futures
import contextlib
import json
import multiprocessing
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

import async_a3c  # noqa: E402
import async_q_1step  # noqa: E402
import async_q_nstep  # noqa: E402
import async_sarsa_1step  # noqa: E402
from async_runtime.actor_learner import ActorLearner, make_training_env, num_actions_of  # noqa: E402
from async_runtime.processes import configure_threads  # noqa: E402
from async_runtime.shared_state import SharedState  # noqa: E402
import atari_wrapper  # noqa: E402
from provenance import provenance  # noqa: E402


LEARNERS = {"n_step": async_q_nstep, "one_step": async_q_1step, "sarsa": async_sarsa_1step, "a3c": async_a3c}
LABELS = {"n_step": "n-step Q", "one_step": "1-step Q", "sarsa": "1-step Sarsa", "a3c": "A3C"}


def measure(count_steps, frames_per_step, warm_up_seconds, windows, window_seconds):
    """Median frames/s of ``count_steps()`` (a running total) over timed windows."""
    time.sleep(warm_up_seconds)
    rates = []
    for _ in range(windows):
        start_steps, start = count_steps(), time.perf_counter()
        time.sleep(window_seconds)
        rates.append((count_steps() - start_steps) * frames_per_step / (time.perf_counter() - start))
    return statistics.median(rates)


def in_fresh_process(function, *args):
    spawn = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(1, mp_context=spawn) as process:
        return process.submit(function, *args).result()


def envs_only(common, threads, timing):
    args = async_q_nstep.parse_args(common)
    envs = [make_training_env(args) for _ in range(threads)]
    steps = [0] * threads  # one slot per thread: no shared counter to race on
    stop = threading.Event()

    def run(index):
        env = envs[index]
        rng = np.random.default_rng(index)
        env.reset(seed=index)
        while not stop.is_set():
            _, _, terminated, truncated, _ = env.step(int(rng.integers(env.action_space.n)))
            steps[index] += 1
            if terminated or truncated:
                env.reset()

    running = [threading.Thread(target=run, args=(i,)) for i in range(threads)]
    for thread in running:
        thread.start()
    rate = measure(lambda: sum(steps), atari_wrapper.frames_per_step(envs[0]), **timing)
    stop.set()
    for thread in running:
        thread.join()
    return rate


def learner(script_name, common, threads, timing):
    script = LEARNERS[script_name]
    args = script.parse_args([*common, "--num_actor_threads", str(threads)])
    configure_threads(seed=0, actor_threads=threads)
    shared = SharedState(args, num_actions_of(args), script.model(args))
    learners = [ActorLearner(i, shared, script.max_segment_steps(args)) for i in range(threads)]
    learners[0].warm_up()
    running = [threading.Thread(target=script.actor_learner_thread, args=(one, shared, args)) for one in learners]
    for thread in running:
        thread.start()
    rate = measure(lambda: shared.T.value, learners[0].frames_per_step, **timing)
    shared.stop_event.set()
    for thread in running:
        thread.join()
    return rate


RATE_LINE = re.compile(r"^T [\d,]+/[\d,]+ \| ([\d,]+) frames/s")
REAL_RUN_WARM_UP_WINDOWS = 3  # summary intervals left out: start-up, the worker processes' compilation


def real_run(common, threads, processes, timing, ray_address=None):
    """async_q_nstep.py as a user runs it: the median of the rates it prints, and the CPU cores it kept busy.

    With ``ray_address``, the processes beyond the first are Ray actors; their
    CPU time counts too (Ray's own daemons' does not).
    """
    with tempfile.TemporaryDirectory() as scratch:
        command = [
            sys.executable, str(ROOT / "async_q_nstep.py"), *common, "--num_actor_threads", str(threads),
            "--num_processes", str(processes), "--T_max", str(10**10), "--summary_interval", str(timing["window_seconds"]),
            "--summary_dir", scratch, "--checkpoint_dir", scratch, "--experiment", "throughput",
        ]
        if ray_address:
            command += ["--ray_address", ray_address]
        run = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, cwd=ROOT)
        rates, cpu_start = [], None
        for line in run.stdout:
            match = RATE_LINE.match(line)
            if not match:
                continue
            rates.append(float(match[1].replace(",", "")))
            if len(rates) == REAL_RUN_WARM_UP_WINDOWS:
                cpu_start, wall_start = cpu_seconds(run.pid), time.perf_counter()
            if len(rates) == REAL_RUN_WARM_UP_WINDOWS + timing["windows"]:
                cores = (cpu_seconds(run.pid) - cpu_start) / (time.perf_counter() - wall_start)
                break
        run.send_signal(signal.SIGTERM)
        run.communicate(timeout=120)
    if len(rates) < REAL_RUN_WARM_UP_WINDOWS + timing["windows"]:
        raise RuntimeError(f"{' '.join(command)} stopped after {len(rates)} summary lines")
    return statistics.median(rates[REAL_RUN_WARM_UP_WINDOWS:]), cores


def cpu_seconds(pid):
    """User and system CPU time so far of process ``pid``, its children and Ray's replica actors (Linux's /proc)."""
    total = 0.0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            command = (stat.parent / "cmdline").read_bytes()
            replica = command.startswith(b"ray::") and b"Replica" in command  # Ray names the process after its actor
        except OSError:
            continue  # ended meanwhile
        if stat.parent.name == str(pid) or int(fields[1]) == pid or replica:
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


@contextlib.contextmanager
def local_ray_cluster():
    """A one-node Ray cluster on this machine, as `ray start --head` makes one; its address."""
    ray_command = str(Path(sys.executable).parent / "ray")
    started = subprocess.run(
        [ray_command, "start", "--head", "--port", "0", "--include-dashboard", "false", "--disable-usage-stats"],
        capture_output=True, text=True, check=True,
    )
    address = re.search(r"--address='([^']+)'", started.stdout)[1]
    try:
        yield address
    finally:
        subprocess.run([ray_command, "stop", "--force"], capture_output=True, check=False)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--game", default="BreakoutNoFrameskip-v4")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2, 4, 8, 16])
    parser.add_argument("--env_backend", choices=("auto", "gymnasium", "ale_vector"), default="auto")
    parser.add_argument("--windows", type=int, default=5, help="timed windows per figure; the median is kept")
    parser.add_argument("--window_seconds", type=float, default=4.0)
    parser.add_argument("--processes", type=int, nargs="+", default=[1, 2], help="process counts of the real runs")
    parser.add_argument("--real_threads", type=int, nargs="+", default=[2, 4],
                        help="thread counts of the real runs (over all processes), beside one thread per process")
    parser.add_argument("--ray", action="store_true",
                        help="also each real run of 2 or more processes with --ray_address, on a one-node Ray "
                        "cluster on this machine: the cost of the Ray path against shared memory")
    parser.add_argument("--quick", action="store_true", help="2 threads, 3 windows of 2 s: about two minutes")
    parser.add_argument("--output", default="benchmarks/throughput.json")
    options = parser.parse_args(argv)
    if options.quick:
        options.threads, options.real_threads, options.windows, options.window_seconds = [2], [2], 3, 2.0
    timing = {"warm_up_seconds": 2.0, "windows": options.windows, "window_seconds": options.window_seconds}

    common = ["--game", options.game, "--env_backend", options.env_backend]
    async_q_nstep.parse_args(common)  # bad flags stop here, before any process starts

    rows = []
    for threads in options.threads:
        ceiling = in_fresh_process(envs_only, common, threads, timing)
        row = {"threads": threads, "envs_only": ceiling}
        for name in LEARNERS:
            row[name] = in_fresh_process(learner, name, common, threads, timing)
        rows.append(row)
        rates = ", ".join(f"{LABELS[name]} {row[name]:,.0f}" for name in LEARNERS)
        print(f"{threads} threads: envs {ceiling:,.0f}, {rates} frames/s", file=sys.stderr, flush=True)

    real_runs = []
    for processes in options.processes:
        for threads in sorted({processes, *options.real_threads}):
            if threads >= processes:
                rate, cores = real_run(common, threads, processes, timing)
                real_runs.append({"processes": processes, "threads": threads, "frames_per_second": rate,
                                  "cores_busy": cores})
                print(f"real run, {threads} threads in {processes} processes: {rate:,.0f} frames/s, "
                      f"{cores:.2f} cores busy", file=sys.stderr, flush=True)
    if options.ray:
        with local_ray_cluster() as address:
            for processes in (count for count in options.processes if count > 1):
                for threads in sorted({processes, *options.real_threads}):
                    if threads >= processes:
                        rate, cores = real_run(common, threads, processes, timing, ray_address=address)
                        real_runs.append({"processes": processes, "threads": threads, "ray": True,
                                          "frames_per_second": rate, "cores_busy": cores})
                        print(f"real run on Ray, {threads} threads in {processes} processes: {rate:,.0f} "
                              f"frames/s, {cores:.2f} cores busy", file=sys.stderr, flush=True)

    print(f"\n{options.game}, env backend {options.env_backend}, {os.cpu_count()} CPUs; "
          f"emulator frames per second, median of {options.windows} windows of {options.window_seconds:g} s\n")
    print("| threads | envs only | " + " | ".join(f"{LABELS[name]} | / envs" for name in LEARNERS) + " |")
    print("|---:|---:|" + "---:|---:|" * len(LEARNERS))
    for row in rows:
        cells = " | ".join(f"{row[name]:,.0f} | {row[name] / row['envs_only']:.0%}" for name in LEARNERS)
        print(f"| {row['threads']} | {row['envs_only']:,.0f} | {cells} |")
    best_threaded = max(run["frames_per_second"] for run in real_runs if run["processes"] == 1)
    print("\nReal runs of async_q_nstep.py (the rate it prints), against its best run in one process:\n")
    print("| processes | threads | memory | frames/s | per process | / best in one process | cores busy | "
          "frames per CPU-second |")
    print("|---:|---:|---|---:|---:|---:|---:|---:|")
    for run in real_runs:
        rate = run["frames_per_second"]
        memory = "Ray replicas" if run.get("ray") else "shared"
        print(f"| {run['processes']} | {run['threads']} | {memory} | {rate:,.0f} | {rate / run['processes']:,.0f} | "
              f"{rate / best_threaded:.2f} | {run['cores_busy']:.2f} | {rate / run['cores_busy']:,.0f} |")
    report = {
        "game": options.game,
        "env_backend": options.env_backend,
        "cpu_count": os.cpu_count(),
        **provenance(),
        "windows": options.windows,
        "window_seconds": options.window_seconds,
        "rows": rows,
        "real_runs": real_runs,
    }
    Path(options.output).parent.mkdir(parents=True, exist_ok=True)
    Path(options.output).write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
