"""Learning benchmark: train one recipe for a time budget, then test every checkpoint it made.

    python benchmarks/learning.py --output runs/breakout_nstep --minutes 60 -- \\
        async_q_nstep.py --game BreakoutNoFrameskip-v4 --num_actor_threads 4 \\
        --T_max 3000000 --anneal_epsilon_timesteps 1000000 --learning_rate 1e-3

1. Trains: runs the script with the flags after ``--`` (this command sets its
   ``--experiment``, ``--summary_dir``, ``--checkpoint_dir`` and
   ``--checkpoint_interval``) until ``--minutes`` of wall-clock time have
   passed (then SIGTERM: the script saves a checkpoint and exits) or the
   script reaches its own ``--T_max``. It checkpoints every
   ``--checkpoint_minutes``; the script keeps its last 5, so each one is
   copied to ``OUTPUT/kept`` once TensorFlow's index names it (complete).
2. Tests each kept checkpoint with the script's own ``--testing``: the
   papers' protocol (up to 30 no-op frames, 18,000-frame cap) at the
   script's ``--eval_epsilon`` (0.05 for the Q learners, 0 for A3C),
   ``--eval_episodes`` episodes each and ``--final_eval_episodes`` for the last.
3. Writes ``OUTPUT/learning.json`` (per checkpoint: T, emulator frames,
   minutes of training, the training mean score of the last 100 games, the
   test's epsilon, mean ± std) and ``OUTPUT/learning.png`` (both against minutes).

With ``--results results``, the JSON and PNG are also copied to
``results/<game>/<learner>_seed<N>.json`` and ``.png`` (learner: the script's
name without ``async_``), where ``python benchmarks/report.py`` reads them.
The JSON records the command, the code's commit, the package versions and
the machine (benchmarks/provenance.py).

``--evaluate_only`` redoes steps 2 and 3 on an OUTPUT that has a run,
testing again the checkpoints whose episodes or epsilon differ from now.
The minutes are the measurement: run nothing else heavy beside it.
"""

import argparse
import glob
import importlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import numpy as np  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

import atari_wrapper  # noqa: E402
from plot_curves import load_scores  # noqa: E402
from provenance import provenance  # noqa: E402

EXPERIMENT = "learning"
TRAINING_MEAN_GAMES = 100
POLL_SECONDS = 10
CURVE_POINTS = 500  # of the training curve in the JSON


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--output", required=True, help="folder for the run, its checkpoints, JSON and PNG")
    parser.add_argument("--minutes", type=float, default=60.0, help="wall-clock budget of the training run")
    # 7.5: a checkpoint at each of the results tables' 15, 30 and 60 minutes (report.MINUTES)
    parser.add_argument("--checkpoint_minutes", type=float, default=7.5, help="minutes between checkpoints")
    parser.add_argument("--eval_episodes", type=int, default=10, help="test episodes per checkpoint")
    parser.add_argument("--final_eval_episodes", type=int, default=30, help="test episodes of the last checkpoint")
    parser.add_argument("--evaluate_only", action="store_true", help="test and report an existing run in OUTPUT")
    parser.add_argument(
        "--results", metavar="DIR", help="also copy the JSON and PNG to DIR/<game>/<learner>_seed<N>.json and .png"
    )
    parser.add_argument(
        "script", help="a learner script: async_q_nstep.py, async_q_1step.py, async_sarsa_1step.py or async_a3c.py"
    )
    parser.add_argument("flags", nargs=argparse.REMAINDER, help="the script's flags: the recipe")
    argv = sys.argv[1:] if argv is None else argv
    options = parser.parse_args(argv)
    for name in ("minutes", "checkpoint_minutes", "eval_episodes", "final_eval_episodes"):
        if not getattr(options, name) > 0:
            parser.error(f"--{name} must be positive, got {getattr(options, name)}")
    # The script runs with the project as its working folder: give it absolute paths.
    options.output = os.path.abspath(options.output)
    script = os.path.join(ROOT, options.script)
    if not os.path.isfile(script):
        parser.error(f"no script {options.script} in {ROOT}")
    flags = [flag for flag in options.flags if flag != "--"]
    args = importlib.import_module(os.path.splitext(os.path.basename(script))[0]).parse_args(flags)
    run_flags = [
        *flags,
        "--experiment", EXPERIMENT,
        "--summary_dir", os.path.join(options.output, "summaries"),
        "--checkpoint_dir", os.path.join(options.output, "checkpoints"),
    ]
    published = options.results and published_paths(options.results, args.game, options.script, args.seed)
    kept = claim_output(parser, options, published, ["benchmarks/learning.py", *argv])
    if not options.evaluate_only:
        train(script, [*run_flags, "--checkpoint_interval", str(options.checkpoint_minutes * 60)], options, kept)
    checkpoints = sorted(kept_checkpoints(kept), key=checkpoint_number)
    if not checkpoints:
        sys.exit(f"error: no checkpoint in {kept}")
    for path, episodes in still_to_test(checkpoints, options, args.eval_epsilon):
        tested = subprocess.run(
            [sys.executable, script, *run_flags, "--testing", "--checkpoint_file", path,
             "--num_eval_episodes", str(episodes)],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, cwd=ROOT,
        )
        if tested.returncode != 0:
            sys.exit(f"error: --testing {path} exited {tested.returncode}: {tested.stderr.strip().splitlines()[-1:]}")
    write_report(summarise(options, args, checkpoints), options.output, published)


def write_report(report, output, published):
    """OUTPUT/learning.json and .png; copies at ``published`` (JSON, PNG paths) if given; a line per checkpoint."""
    with open(os.path.join(output, "learning.json"), "w") as file:
        json.dump(report, file, indent=2)
    plot(report, os.path.join(output, "learning.png"))
    if published:
        os.makedirs(os.path.dirname(published[0]), exist_ok=True)
        shutil.copyfile(os.path.join(output, "learning.json"), published[0])
        shutil.copyfile(os.path.join(output, "learning.png"), published[1])
        print(f"results: {published[0]}")
    for row in report["checkpoints"]:
        print(
            f"{row['minutes']:5.1f} min  T {row['T']:>10,}  frames {row['frames']:>11,}  "
            f"training {format_score(row['training_mean'])}  test {row['test_mean']:6.2f} ± {row['test_std']:.2f} "
            f"(median {row['test_median']:g}, {row['test_episodes']} episodes)"
        )


def claim_output(parser, options, published, command):
    """OUTPUT/kept, where the checkpoints go. For a new run (no --evaluate_only): refuse, with one line, to
    overwrite a ``published`` result or an OUTPUT that holds files; make kept; record ``command`` and what
    it runs on in OUTPUT/provenance.json. benchmarks/peers.py starts its runs with it too."""
    kept = os.path.join(options.output, "kept")
    if options.evaluate_only:
        return kept
    if published and any(os.path.exists(path) for path in published):
        parser.error(f"{published[0]} exists: a result is not overwritten (remove it to run again)")
    if os.path.isdir(options.output) and os.listdir(options.output):
        parser.error(f"{options.output} already holds files: pick another --output, or pass --evaluate_only")
    os.makedirs(kept)
    with open(os.path.join(options.output, "provenance.json"), "w") as file:
        json.dump(provenance(command), file, indent=2)
    return kept


def still_to_test(checkpoints, options, epsilon):
    """(path, episodes) for each checkpoint not yet tested with its episodes and ``epsilon``:
    --final_eval_episodes for the last, --eval_episodes for the others (with --evaluate_only again,
    those tested are skipped)."""
    for path in checkpoints:
        episodes = options.final_eval_episodes if path == checkpoints[-1] else options.eval_episodes
        tested = read_json(f"{path}.eval.json") if os.path.exists(f"{path}.eval.json") else {}
        if (tested.get("episodes"), tested.get("eval_epsilon")) != (episodes, epsilon):
            yield path, episodes


def learner_name(script):
    """async_q_nstep.py -> q_nstep: how results/ and the tables name a learner."""
    return os.path.splitext(os.path.basename(script))[0].removeprefix("async_")


def published_paths(results, game, script, seed):
    stem = os.path.join(results, game, f"{learner_name(script)}_seed{seed}")
    return f"{stem}.json", f"{stem}.png"


def format_score(score):
    return "     -" if score is None else f"{score:6.2f}"  # None: no game had ended yet


def train(script, flags, options, kept):
    """Run the script for the budget, copying each complete checkpoint to ``kept``."""
    log_path = os.path.join(options.output, "train.log")
    checkpoint_dir = os.path.join(options.output, "checkpoints", EXPERIMENT)
    with open(log_path, "w") as log:
        log.write(f"{' '.join([sys.executable, script, *flags])}\n")
        log.flush()
        process = subprocess.Popen([sys.executable, script, *flags], stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
        deadline = time.monotonic() + options.minutes * 60
        while process.poll() is None:
            if time.monotonic() >= deadline:
                process.send_signal(signal.SIGTERM)  # the script saves a last checkpoint
                process.wait()
                break
            time.sleep(POLL_SECONDS)
            copy_complete_checkpoints(checkpoint_dir, kept)
    copy_complete_checkpoints(checkpoint_dir, kept)
    if process.returncode not in (0, 128 + signal.SIGTERM):
        sys.exit(f"error: training exited {process.returncode}; see {log_path}")


def copy_complete_checkpoints(checkpoint_dir, kept):
    index = os.path.join(checkpoint_dir, "checkpoint")
    if not os.path.exists(index):
        return
    with open(index) as file:
        prefixes = re.findall(r'all_model_checkpoint_paths: "([^"]+)"', file.read())
    for prefix in prefixes:
        prefix = os.path.join(checkpoint_dir, os.path.basename(prefix))
        if os.path.exists(os.path.join(kept, os.path.basename(prefix) + ".index")):
            continue
        # Only the checkpoint proper, which the manager wrote whole before listing it: the runtime
        # writes its .keras export afterwards, through a temporary file that is renamed away.
        # .index last: a kept .index means the files are all there.
        for path in glob.glob(prefix + ".data-*"):
            shutil.copy2(path, kept)
        shutil.copy2(prefix + ".index", kept)


def read_json(path):
    with open(path) as file:
        return json.load(file)


def kept_checkpoints(kept):
    return [path[: -len(".index")] for path in glob.glob(os.path.join(kept, "ckpt-*.index"))]


def checkpoint_number(path):
    return int(path.rsplit("-", 1)[1])


def summarise(options, args, checkpoints):
    T, seconds, scores = load_scores(os.path.join(options.output, "summaries", EXPERIMENT))
    return build_report(
        options.output, checkpoints, (T, seconds, scores), frames_per_step_of(args.game),
        game=args.game, script=options.script, learner=learner_name(options.script), seed=args.seed,
        recipe=" ".join(flag for flag in options.flags if flag != "--"), minutes_budget=options.minutes,
    )


def frames_per_step_of(game):
    env = atari_wrapper.make_env(game)
    frames_per_step = atari_wrapper.frames_per_step(env)
    env.close()
    return frames_per_step


def build_report(output, checkpoints, games, frames_per_step, **identity):
    """learning.json's content: ``identity`` (game, script, learner, seed, recipe, minutes_budget), the
    provenance in ``output``, a row per checkpoint (tested: ``<path>.eval.json``) and the training curve.

    ``games`` is (T, seconds, score) arrays, one entry per finished game; ``checkpoints`` are paths
    ending in ``-<T>``. benchmarks/peers.py writes its runs with it too.
    """
    T, seconds, scores = games
    rows = []
    for path in checkpoints:
        step = checkpoint_number(path)
        played = T <= step
        test = read_json(f"{path}.eval.json")
        rows.append({
            "checkpoint": os.path.basename(path),
            "T": step,
            "frames": int(step * frames_per_step),
            "minutes": float(seconds[played][-1] / 60) if played.any() else 0.0,
            "games": int(played.sum()),
            "training_mean": float(np.mean(scores[played][-TRAINING_MEAN_GAMES:])) if played.any() else None,
            "test_epsilon": test["eval_epsilon"],
            "test_mean": test["mean"],
            "test_std": test["std"],
            "test_median": test["median"],
            "test_episodes": test["episodes"],
        })
    running = np.convolve(scores, np.ones(TRAINING_MEAN_GAMES), "full")[: len(scores)]
    running /= np.minimum(np.arange(1, len(scores) + 1), TRAINING_MEAN_GAMES)
    shown = np.unique(np.linspace(0, len(scores) - 1, CURVE_POINTS).astype(int))  # a light JSON
    provenance_path = os.path.join(output, "provenance.json")
    made_by = read_json(provenance_path) if os.path.exists(provenance_path) else {"command": None, "commit": None}
    return {
        **identity,
        **made_by,
        "checkpoints": rows,
        "training_curve": {
            "minutes": np.round(seconds[shown] / 60, 2).tolist(),
            "mean_of_last_100": np.round(running[shown], 3).tolist(),
        },
    }


def plot(report, path):
    figure = Figure(figsize=(7, 4.5), layout="constrained")
    axes = figure.subplots()
    curve = report["training_curve"]
    axes.plot(curve["minutes"], curve["mean_of_last_100"], label="training: mean of the last 100 games")
    rows = report["checkpoints"]
    axes.errorbar(
        [row["minutes"] for row in rows], [row["test_mean"] for row in rows], yerr=[row["test_std"] for row in rows],
        fmt="o", capsize=4, label=f"--testing: mean ± std (no-op starts, epsilon {rows[-1]['test_epsilon']:g})",
    )
    axes.set_xlabel("minutes of training")
    axes.set_ylabel("score per game")
    axes.set_title(f"{report['game']}, {report['script']}", fontsize=10)
    axes.grid(alpha=0.3)
    axes.legend(fontsize=8, loc="upper left")
    figure.savefig(path, dpi=110)


if __name__ == "__main__":
    main()
