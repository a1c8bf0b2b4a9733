"""Plot training curves: game score against emulator frames and against hours.

Example, for two runs trained with ``--summary_dir /tmp/summaries``::

    python plot_curves.py /tmp/summaries/breakout_1step /tmp/summaries/breakout_nstep \\
        --labels "1-step Q" "n-step Q" --title Breakout --output docs/breakout.png

Each RUN_DIR is one run's TensorBoard folder, ``<summary_dir>/<experiment>``;
the event files directly in it are read (its ``eval/`` folder is not). The
command writes one PNG with two panels side by side, sharing the score axis:

* left: ``episode/score`` of every finished episode against emulator frames,
  in millions: the global step T when the episode ended times
  ``--frames_per_step`` (4 for Atari games with frameskip 4, 1 for Catch-v0);
* right: the same scores against hours of training.

Each episode is a faint dot; the bold line is the moving mean of the last
``--smoothing`` episodes (of all episodes so far, early in a run). One colour
per run; the legend names each run after its folder, or by ``--labels``.

A run resumed from its checkpoint writes one event file per process into the
same folder. The files are merged in the order they were written, and:

* hours count the time the run spent training: within each event file, from
  its first summary to its last. The time between one file's last summary and
  the next file's first (the run was stopped, then resumed) is left out.
* a resumed process goes on from its checkpoint's T, the smallest step its
  file logs. Episodes an earlier file logged past that step were played by
  work the checkpoint did not keep (the process was killed between
  checkpoints), so they are dropped and T only grows; the time spent on them
  still counts.

Bad input (a folder without event files or without ``episode/score``, a
--labels count other than the number of runs) is one line on stderr and exit
status 2.
"""

import argparse
import glob
import os
import sys

import numpy as np
from matplotlib.figure import Figure

# Imported before TensorBoard, whose event reader imports TensorFlow: the
# package imports it without its C++ start-up notices.
from async_runtime.errors import UsageError
from tensorboard.backend.event_processing.event_file_loader import EventFileLoader  # noqa: I001
from tensorboard.util.tensor_util import make_ndarray

SCORE_TAG = "episode/score"


def load_scores(run_dir):
    """Return arrays (T, wall_seconds, score) of a run's episodes, in the order played.

    ``wall_seconds`` is training time since the run's first summary, without
    the pauses between event files; episodes lost to a resume are left out.
    """
    if not os.path.isdir(run_dir):
        raise UsageError(f"{run_dir} is not a directory")
    paths = glob.glob(os.path.join(glob.escape(run_dir), "events.out.tfevents.*"))
    files = [events for events in map(summary_events, paths) if events]
    if not files:
        raise UsageError(f"{run_dir} holds no TensorBoard event files with summaries")
    files.sort(key=lambda events: events[0].wall_time)
    episodes, trained_seconds = [], 0.0
    for events in files:
        start_T = min(event.step for event in events)
        episodes = [episode for episode in episodes if episode[0] <= start_T]
        started = events[0].wall_time
        episodes += [
            (event.step, trained_seconds + event.wall_time - started, make_ndarray(value.tensor).item())
            for event in events
            for value in event.summary.value
            if value.tag == SCORE_TAG
        ]
        trained_seconds += events[-1].wall_time - started
    if not episodes:
        raise UsageError(f"{run_dir} has no {SCORE_TAG} summaries: no episode finished yet")
    T, seconds, scores = (np.array(column) for column in zip(*episodes))
    return T, seconds, scores


def summary_events(path):
    # The file's first event, its version header, has a wall time rounded to
    # the second: timing uses the summaries alone.
    return [event for event in EventFileLoader(path).Load() if event.summary.value]


def smooth(values, window):
    """Mean of the last ``window`` values at each position (of all values so far, at the start)."""
    values = np.asarray(values, dtype=float)
    sums = np.concatenate([[0.0], np.cumsum(values)])
    ends = np.arange(1, len(values) + 1)
    counts = np.minimum(ends, window)
    return (sums[ends] - sums[ends - counts]) / counts


def plot(runs, output, title=None, smoothing=100, frames_per_step=4):
    """Write the two-panel PNG; ``runs`` is a list of (label, load_scores' arrays)."""
    # A bare Figure renders PNGs with Agg and leaves pyplot's GUI machinery alone.
    figure = Figure(figsize=(12, 4.5), dpi=150, layout="constrained")
    by_frames, by_hours = figure.subplots(1, 2, sharey=True)
    for index, (label, (T, seconds, scores)) in enumerate(runs):
        colour = f"C{index % 10}"
        mean = smooth(scores, smoothing)
        for axes, x in ((by_frames, T * frames_per_step / 1e6), (by_hours, seconds / 3600)):
            axes.scatter(x, scores, s=4, alpha=0.2, linewidths=0, color=colour)
            axes.plot(x, mean, linewidth=2, color=colour, label=label, zorder=3)  # above every run's dots
    by_frames.set(xlabel="emulator frames (millions)", ylabel="score per episode")
    by_hours.set(xlabel="training hours")
    for axes in (by_frames, by_hours):
        axes.grid(alpha=0.3)
    # 'best' would search every dot of long runs; scores rise, so upper left is free.
    by_frames.legend(loc="upper left", title=f"mean of last {smoothing} episodes")
    if title:
        figure.suptitle(title)
    try:
        os.makedirs(os.path.dirname(output) or ".", exist_ok=True)
        figure.savefig(output)
    except OSError as error:
        raise UsageError(f"cannot write {output}: {error.strerror or error}") from None


def positive_int(text):
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def parse_args(argv):
    parser = argparse.ArgumentParser(description="Plot game score against emulator frames and training hours.")
    parser.add_argument("run_dirs", nargs="+", metavar="RUN_DIR",
                        help="a run's TensorBoard folder, <summary_dir>/<experiment>")
    parser.add_argument("--output", required=True, help="the PNG to write; missing folders are created")
    parser.add_argument("--labels", nargs="+", help="legend names, one per RUN_DIR (default: folder names)")
    parser.add_argument("--smoothing", type=positive_int, default=100,
                        help="episodes in the moving mean (default: %(default)s)")
    parser.add_argument("--title", help="title above both panels")
    parser.add_argument("--frames_per_step", type=positive_int, default=4,
                        help="emulator frames per step T: 4 with frameskip 4, 1 for Catch-v0 (default: %(default)s)")
    return parser.parse_args(argv)


def main(argv=None):
    """Plot the runs in ``argv`` (default: the command line); return the exit status."""
    args = parse_args(argv)
    try:
        if args.labels is not None and len(args.labels) != len(args.run_dirs):
            raise UsageError(f"{len(args.labels)} --labels for {len(args.run_dirs)} run directories")
        labels = args.labels or [os.path.basename(os.path.normpath(run_dir)) for run_dir in args.run_dirs]
        runs = [(label, load_scores(run_dir)) for label, run_dir in zip(labels, args.run_dirs)]
        plot(runs, args.output, args.title, args.smoothing, args.frames_per_step)
    except UsageError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    counts = ", ".join(f"{label} {len(scores):,} episodes" for label, (_, _, scores) in runs)
    print(f"wrote {args.output}: {counts}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
