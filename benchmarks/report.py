"""The results tables and figure, made from the run files in results/; the README's section rewritten.

    python benchmarks/report.py            # rewrite README.md's results section and results/figure.png
    python benchmarks/report.py --check    # exit 1 if the README's section differs from what the files give

Each run is one ``results/<game>/<learner>_seed<N>.json`` written by
``benchmarks/learning.py --results results`` (or, for Stable-Baselines3's
agents, ``benchmarks/peers.py``). Runs of one game and learner
with the same flags (``--seed`` aside), tested at the same epsilon, are one row: test scores at 15, 30
and 60 minutes of training and at the end, as the mean over seeds and their
range, and frames per second. A run's score at a time is its checkpoint
within CHECKPOINT_SLACK minutes of it; none, no figure (nothing is
interpolated). results/archive/ is not read.
"""

import argparse
import glob
import json
import os
import re
import statistics
import sys

from matplotlib.figure import Figure

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESULTS = os.path.join(ROOT, "results")
README = os.path.join(ROOT, "README.md")
BEGIN, END = "<!-- results:begin -->", "<!-- results:end -->"
MINUTES = (15, 30, 60)
CHECKPOINT_SLACK = 3.0  # minutes: checkpoints land a little before or after the round figure
LEARNERS = {
    "a3c": "A3C", "q_nstep": "n-step Q", "q_1step": "1-step Q", "sarsa_1step": "1-step Sarsa",
    "sb3_a2c": "SB3 A2C", "sb3_ppo": "SB3 PPO",  # benchmarks/peers.py: Stable-Baselines3, the peers
}
# The paper's 1-step Q on 16 threads (Mnih et al. 2016) at one hour of training, read by eye off its learning
# curves: the reference each learner's 60-minute score stands beside. Pong's was not read.
PAPER_ONE_HOUR = {
    "BeamRiderNoFrameskip-v4": 1000, "BreakoutNoFrameskip-v4": 10, "QbertNoFrameskip-v4": 500,
    "SpaceInvadersNoFrameskip-v4": 300,
}
RUN_FLAGS = {"--seed"}  # flags that name a run, not its recipe; --game is the table's own column


class ReportError(Exception):
    """A results file that the tables cannot use: one line names it."""


def load_runs(results=RESULTS):
    """Every run under results/<game>/, archive/ excepted, sorted by game, learner, recipe and seed."""
    runs = []
    for path in sorted(glob.glob(os.path.join(results, "*", "*.json"))):
        if os.path.basename(os.path.dirname(path)) == "archive":
            continue
        with open(path) as file:
            try:
                run = json.load(file)
            except json.JSONDecodeError as error:
                raise ReportError(f"{os.path.relpath(path, ROOT)}: not JSON ({error})") from None
        missing = {"game", "learner", "seed", "recipe", "checkpoints", "command"} - run.keys()
        if missing:
            raise ReportError(f"{os.path.relpath(path, ROOT)}: no {', '.join(sorted(missing))} (not from learning.py or peers.py)")
        run["path"] = os.path.relpath(path, ROOT)
        run["test_epsilon"] = epsilon_tested_at(run)
        runs.append(run)
    return sorted(runs, key=lambda run: (run["game"], learner_order(run["learner"]), recipe_of(run), run["seed"]))


def epsilon_tested_at(run):
    """The one epsilon all the run's checkpoints were tested at: scores at two cannot share a row."""
    epsilons = {row.get("test_epsilon") for row in run["checkpoints"]}
    if None in epsilons or len(epsilons) != 1:
        raise ReportError(
            f"{run['path']}: its checkpoints' test epsilons are {sorted(map(str, epsilons))}, not one value: "
            "test them again with --evaluate_only"
        )
    return epsilons.pop()


def learner_order(learner):
    order = list(LEARNERS)
    return (order.index(learner), learner) if learner in order else (len(order), learner)


def recipe_of(run):
    """The run's flags beyond the defaults, less --game and the flags that only name the run."""
    flags, kept, skip = run["recipe"].split(), [], False
    for flag in flags:
        if skip:
            skip = False
        elif flag in RUN_FLAGS or flag == "--game":
            skip = True
        else:
            kept.append(flag)
    return " ".join(kept)


def group_runs(runs):
    groups = {}
    for run in runs:
        groups.setdefault((run["game"], run["learner"], recipe_of(run), run["test_epsilon"]), []).append(run)
    return groups


def score_at(run, minutes):
    """The test mean of the run's checkpoint nearest ``minutes``, if one lies within the slack."""
    rows = [row for row in run["checkpoints"] if abs(row["minutes"] - minutes) <= CHECKPOINT_SLACK]
    return min(rows, key=lambda row: abs(row["minutes"] - minutes))["test_mean"] if rows else None


def frames_per_second(run):
    last = run["checkpoints"][-1]
    return last["frames"] / (last["minutes"] * 60) if last["minutes"] > 0 else None


def spread(values):
    """Mean and range over seeds, as a table cell; "-" where a seed has no figure."""
    if not values or any(value is None for value in values):
        return "-"
    if len(values) == 1:
        return f"{values[0]:.1f}"
    return f"{statistics.mean(values):.1f} ({min(values):.1f} to {max(values):.1f})"


def table(groups):
    lines = [
        "| game | learner | flags beyond the defaults | test epsilon | seeds | test at 15 min | 30 min | 60 min "
        "| paper at 60 min | at the end (min) | frames/s |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for (game, learner, recipe, epsilon), runs in groups.items():
        rates = [frames_per_second(run) for run in runs]
        cells = [
            game,
            LEARNERS.get(learner, learner),
            f"`{recipe}`" if recipe else "defaults",
            f"{epsilon:g}",
            ", ".join(str(run["seed"]) for run in runs),
            *(spread([score_at(run, minutes) for run in runs]) for minutes in MINUTES),
            f"~{PAPER_ONE_HOUR[game]:,}" if game in PAPER_ONE_HOUR else "-",
            ends_cell(runs),
            f"{statistics.mean(rates):,.0f}" if None not in rates else "-",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def ends_cell(runs):
    """The last checkpoints' test scores, one spread per length of run (a 2-hour seed beside 1-hour ones)."""
    by_length = {}
    for run in runs:
        last = run["checkpoints"][-1]
        by_length.setdefault(run.get("minutes_budget") or round(last["minutes"]), []).append(last)
    return "; ".join(
        f"{spread([row['test_mean'] for row in ends])} ({statistics.mean(row['minutes'] for row in ends):.0f})"
        for _, ends in sorted(by_length.items())
    )


FIGURE_LINE = "![Test score against hours of training, one panel per game](results/figure.png)"


def section(runs, with_figure=True):
    """The README's results section, between the markers (``with_figure``: the README's figure drawn below)."""
    if not runs:
        return "No run has been recorded in results/ yet: docs/plan.md lists the runs that will fill this table.\n"
    groups = group_runs(runs)
    lines = [
        "Test scores (`--testing`: up to 30 no-op starts, 10 episodes per checkpoint and 30 at the end, at the "
        "row's epsilon: 0.05 for the greedy Q learners, 0 for the policies that sample their actions) as the mean over seeds and, in brackets, their range; frames/s over the whole run. Paper at 60 min: "
        "its 1-step Q on 16 threads after one hour, read by eye off its curves (Mnih et al. 2016; Pong not read). "
        "A row of one seed is one draw, not a result: threads interleave differently on every run.",
        "",
        *table(groups),
        "",
        *([FIGURE_LINE, ""] if with_figure else []),
        "<details><summary>The command behind each run</summary>",
        "",
        *(f"- [{run['path']}]({run['path']}) ({run['commit'] or 'commit not recorded'}): `{run['command']}`"
          for group in groups.values() for run in group),
        "",
        "</details>",
    ]
    return "\n".join(lines) + "\n"


def figure(runs, path):
    """One panel per game, one line per learner (and recipe): the mean over seeds, their range as a band."""
    groups = group_runs(runs)
    games = sorted({game for game, *_ in groups})
    columns = min(len(games), 3)
    rows = -(-len(games) // columns)
    plot = Figure(figsize=(4.2 * columns, 3.4 * rows), layout="constrained")
    axes_of = plot.subplots(rows, columns, squeeze=False).ravel()
    for axes, game in zip(axes_of, games):
        for (group_game, learner, recipe, epsilon), group in groups.items():
            if group_game != game:
                continue
            # Seeds' checkpoints fall at slightly different minutes: align them by index.
            count = min(len(run["checkpoints"]) for run in group)
            hours = [statistics.mean(run["checkpoints"][i]["minutes"] for run in group) / 60 for i in range(count)]
            scores = [[run["checkpoints"][i]["test_mean"] for run in group] for i in range(count)]
            seeds = f"{len(group)} seed{'s' if len(group) > 1 else ''}"
            label = LEARNERS.get(learner, learner) + (f" ({recipe})" if recipe else "") + f", epsilon {epsilon:g}, {seeds}"
            line, = axes.plot(hours, [statistics.mean(values) for values in scores], marker="o", label=label)
            if len(group) > 1:
                axes.fill_between(hours, [min(values) for values in scores], [max(values) for values in scores],
                                  color=line.get_color(), alpha=0.2)
        if game in PAPER_ONE_HOUR:
            axes.plot([1.0], [PAPER_ONE_HOUR[game]], marker="*", markersize=11, color="black", linestyle="none",
                      label="paper's 1-step Q, 16 threads, 1 h")
        axes.set_title(game, fontsize=10)
        axes.set_xlabel("hours of training")
        axes.set_ylabel("test score")
        axes.grid(alpha=0.3)
        axes.legend(fontsize=7)
    for axes in axes_of[len(games):]:
        axes.set_visible(False)
    plot.savefig(path, dpi=100)


def rewrite(readme_text, new_section):
    pattern = re.compile(re.escape(BEGIN) + r"\n.*?" + re.escape(END), re.S)
    if len(pattern.findall(readme_text)) != 1:
        raise ReportError(f"README.md needs exactly one {BEGIN} ... {END} section")
    return pattern.sub(lambda _: f"{BEGIN}\n{new_section}{END}", readme_text)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if README.md's section is out of date")
    parser.add_argument(
        "--screen", metavar="DIR", help="print the table of the runs under DIR (a screen's) and leave README.md alone"
    )
    options = parser.parse_args(argv)
    if options.screen:
        try:
            print(section(load_runs(options.screen), with_figure=False), end="")
        except ReportError as error:
            print(f"error: {error}", file=sys.stderr)
            return 2
        return 0
    try:
        runs = load_runs()
        with open(README) as file:
            text = file.read()
        updated = rewrite(text, section(runs))
    except ReportError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if options.check:
        if updated != text:
            print("README.md's results section differs from results/: run python benchmarks/report.py",
                  file=sys.stderr)
            return 1
        return 0
    with open(README, "w") as file:
        file.write(updated)
    if runs:
        figure(runs, os.path.join(RESULTS, "figure.png"))
    print(f"README.md: results of {len(runs)} runs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
