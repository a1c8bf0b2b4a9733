"""Resident memory of a long training run: it must stay flat (no retracing, no growth).

Starts async_q_nstep.py as a user would, samples its resident set size from
/proc every --sample_seconds, and prints RSS against time and the growth from
the first sample after warm-up to the last:

    python benchmarks/memory.py                      # 16 threads, 10 minutes
    python benchmarks/memory.py --threads 2 --minutes 1
"""

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def resident_mib(pid):
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for process {pid}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--game", default="BreakoutNoFrameskip-v4")
    parser.add_argument("--threads", type=int, default=16)
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--warm_up_seconds", type=float, default=60.0, help="samples before this are not the baseline")
    parser.add_argument("--sample_seconds", type=float, default=30.0)
    options = parser.parse_args(argv)

    with tempfile.TemporaryDirectory() as scratch:
        process = subprocess.Popen(
            [sys.executable, str(ROOT / "async_q_nstep.py"), "--game", options.game,
             "--num_actor_threads", str(options.threads), "--experiment", "memory",
             "--summary_dir", scratch, "--checkpoint_dir", scratch, "--summary_interval", "30"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        started = time.monotonic()
        samples = []  # (seconds, MiB)
        try:
            while (elapsed := time.monotonic() - started) < options.minutes * 60:
                if process.poll() is not None:
                    raise SystemExit(f"training exited early with status {process.returncode}")
                samples.append((elapsed, resident_mib(process.pid)))
                print(f"{elapsed:6.0f} s  {samples[-1][1]:8.1f} MiB", flush=True)
                time.sleep(options.sample_seconds)
        finally:
            process.terminate()
            process.wait()

    baseline = next(mib for seconds, mib in samples if seconds >= options.warm_up_seconds)
    last, peak = samples[-1][1], max(mib for _, mib in samples)
    print(f"\n{options.threads} threads, {options.game}: RSS after warm-up {baseline:.1f} MiB, "
          f"at the end {last:.1f} MiB ({last / baseline - 1:+.1%}), peak {peak:.1f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
