"""Catch seeds: the learning test's recipe for one learner, once per seed, and how many seeds reach its pass mark.

    python benchmarks/catch_seeds.py async_q_1step.py --seeds 0-19
    python benchmarks/catch_seeds.py async_a3c.py --seeds 0-19 -- --T_max 25000

tests/test_learning.py runs each learner once, on one seed, and counts on
its recipe passing on every seed: this measures that claim, and any change
to it (a shorter budget, another learning rate) given after ``--``, which
overrides the test's flags of the same name. Each run is the test's own:
the script in a fresh process with tests/test_learning.py's flags, scored
by the mean of its last 50 episodes against the same pass mark. Prints one
line per seed and a summary; ``--output`` keeps them as JSON with the
command, commit and versions; ``--keep DIR`` keeps each run's summaries and
checkpoint in DIR/seedN, to see how a failed seed failed (its curve with
plot_curves.py, its policy through --testing). Runs one at a time: run
nothing else beside.
"""

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "tests"))

import numpy as np  # noqa: E402

from plot_curves import load_scores  # noqa: E402
from provenance import provenance  # noqa: E402
from test_learning import FLAGS_OF, PASS_MARK  # noqa: E402

LAST_EPISODES = 50


def seed_range(text):
    """``3`` or ``0-19`` (inclusive) as a list of seeds."""
    first, _, last = text.partition("-")
    try:
        seeds = list(range(int(first), int(last or first) + 1))
    except ValueError:
        raise argparse.ArgumentTypeError(f"seeds are N or FIRST-LAST, got {text!r}") from None
    if not seeds:
        raise argparse.ArgumentTypeError(f"no seed in {text!r}")
    return seeds


def seed_folder(keep, seed):
    return os.path.join(keep, f"seed{seed}")


def run_seed(script, flags, seed, processes, keep=None):
    """One run of the test's recipe: (last-50 mean, episodes, seconds), its files kept under ``keep`` if given."""
    kept = contextlib.nullcontext(seed_folder(keep, seed)) if keep else None
    with kept or tempfile.TemporaryDirectory(prefix="catch_seeds_") as folder:
        command = [
            sys.executable, os.path.join(ROOT, script), *FLAGS_OF[script], "--num_processes", str(processes),
            "--seed", str(seed), "--experiment", "catch", "--summary_dir", os.path.join(folder, "summaries"),
            "--checkpoint_dir", os.path.join(folder, "checkpoints"), *flags,
        ]
        started = time.monotonic()
        completed = subprocess.run(command, capture_output=True, text=True, cwd=ROOT)
        seconds = time.monotonic() - started
        if completed.returncode != 0:
            sys.exit(f"error: seed {seed}: {script} exited {completed.returncode}:\n{completed.stderr[-2000:]}")
        _, _, scores = load_scores(os.path.join(folder, "summaries", "catch"))
    return float(np.mean(scores[-LAST_EPISODES:])), len(scores), seconds


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("script", choices=sorted(FLAGS_OF), help="the learner")
    parser.add_argument("--seeds", type=seed_range, default=seed_range("0-19"), help="N or FIRST-LAST (0-19)")
    parser.add_argument("--processes", type=int, default=1, help="--num_processes of each run (the test's: 1, or 2)")
    parser.add_argument("--output", help="also write the runs and their summary to this JSON file")
    parser.add_argument("--keep", metavar="DIR", help="keep each run's summaries and checkpoint in DIR/seedN")
    parser.epilog = "Flags after -- override the test's own (for example -- --T_max 25000)."
    argv = sys.argv[1:] if argv is None else argv
    ours, flags = (argv[:argv.index("--")], argv[argv.index("--") + 1:]) if "--" in argv else (argv, [])
    options = parser.parse_args(ours)
    if options.keep:
        # A run would resume from a kept checkpoint and add to its episodes.
        taken = [seed_folder(options.keep, seed) for seed in options.seeds
                 if os.path.exists(seed_folder(options.keep, seed))]
        if taken:
            parser.error(f"--keep: {taken[0]} exists; give a new DIR or remove it")
    runs = []
    for seed in options.seeds:
        mean, episodes, seconds = run_seed(options.script, flags, seed, options.processes, options.keep)
        runs.append({"seed": seed, "last_50_mean": mean, "episodes": episodes, "seconds": seconds,
                     "passed": mean >= PASS_MARK})
        print(f"seed {seed:>3}: last-{LAST_EPISODES} mean {mean:+.2f} over {episodes:,} episodes, "
              f"{'passed' if mean >= PASS_MARK else 'FAILED'} ({seconds:.0f} s)", flush=True)
    means = [run["last_50_mean"] for run in runs]
    passed = sum(run["passed"] for run in runs)
    print(f"{options.script} {' '.join(flags)}: {passed} of {len(runs)} seeds passed (mark {PASS_MARK:.2f}); "
          f"last-{LAST_EPISODES} means {min(means):+.2f} to {max(means):+.2f}; "
          f"median {np.median([run['seconds'] for run in runs]):.0f} s a run")
    if options.output:
        with open(options.output, "w") as file:
            json.dump({"script": options.script, "flags": [*FLAGS_OF[options.script], *flags],
                       "processes": options.processes, "pass_mark": PASS_MARK, "runs": runs,
                       "provenance": provenance(["benchmarks/catch_seeds.py", *argv])},
                      file, indent=2)
    return 0 if passed == len(runs) else 1


if __name__ == "__main__":
    sys.exit(main())
