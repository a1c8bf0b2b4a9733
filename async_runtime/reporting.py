"""What a training run reports: TensorBoard summaries and the console line."""

import math
import sys
import time

import numpy as np
import tensorflow as tf
import tqdm
from tensorboard.plugins.scalar import metadata as scalar_metadata

RECENT_EPISODES = 50  # episodes in the console's and summaries' recent mean score


class TrainingLog:
    """TensorBoard summaries under ``summary_dir`` and the console's progress, for one training run.

    Episode scalars are logged at the T when the episode ended; rates and
    losses at the T of each summary interval.
    """

    def __init__(self, summary_dir, args, T, model):
        self.model = model
        self.writer = tf.summary.create_file_writer(summary_dir)
        with self.writer.as_default():
            tf.summary.text("hyperparameters", hyperparameter_table(args), step=T)
        self.progress = Progress(T, args.T_max, live=sys.stdout.isatty())
        self.recent_scores = []
        self._episode_tags = ["episode/score", "episode/length", model.value_tag]
        if model.explores_epsilon_greedily:
            self._episode_tags.append("episode/epsilon")
        self._write_episodes = episode_writer(self.writer, self._episode_tags)
        self._write_episodes.get_concrete_function()  # traced now, not while the first game's thread waits

    def episodes(self, records):
        """Finished games' scalars, each at the T its game ended, written in one compiled call.

        An eager tf.summary.scalar holds the GIL the actor-learners need for
        over a millisecond: Catch's 9-step games end some 40 a second, and
        four such calls a game took a sixth of a test run's CPU time.
        """
        if not records:
            return
        columns = [[record.score, record.length, record.mean_value] for record in records]
        if "episode/epsilon" in self._episode_tags:
            columns = [[*row, record.epsilon] for row, record in zip(columns, records)]
        self._write_episodes(np.array([record.T for record in records], np.int64), np.array(columns, np.float32))
        self.recent_scores = [*self.recent_scores, *(record.score for record in records)][-RECENT_EPISODES:]

    def rates(self, T, frames_per_second, learning_rate, loss):
        """The summary interval's rates; ``loss`` (per state) is None when no state was learned from."""
        recent_score = float(np.mean(self.recent_scores)) if self.recent_scores else None
        with self.writer.as_default():
            tf.summary.scalar("charts/frames_per_second", frames_per_second, step=T)
            tf.summary.scalar("charts/learning_rate", learning_rate, step=T)
            if loss is not None:
                tf.summary.scalar(self.model.loss_tag, loss, step=T)
            if recent_score is not None:
                tf.summary.scalar("charts/recent_mean_score", recent_score, step=T)
        self.writer.flush()
        self.progress.report(T, frames_per_second, recent_score, len(self.recent_scores))

    def health(self, T, dead_fractions, output_spread):
        """The share of each torso layer's units that never fire on recent states, and the outputs' spread."""
        with self.writer.as_default():
            for layer, fraction in dead_fractions.items():
                tf.summary.scalar(f"health/dead_units_{layer}", fraction, step=T)
            tf.summary.scalar("health/output_spread", output_spread, step=T)

    def warning(self, T, text):
        """On the console and, so it stays with the curves, as TensorBoard text."""
        with self.writer.as_default():
            tf.summary.text("warnings", text, step=T)
        self.writer.flush()
        self.message(text)

    def message(self, text):
        self.progress.write(text)

    def close(self):
        self.writer.flush()
        self.writer.close()
        self.progress.close()


def episode_writer(writer, tags):
    """A compiled function that writes ``values[i, j]`` as scalar ``tags[j]`` at step ``steps[i]``, for every row i.

    tf.summary.write with the scalar plugin's metadata, which is what
    tf.summary.scalar writes, but without its tag taking the loop's name
    scope ("while/episode/score").
    """
    metadata = scalar_metadata.create_summary_metadata(display_name=None, description=None)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.int64), tf.TensorSpec([None, len(tags)], tf.float32)])
    def write(steps, values):
        with writer.as_default():
            for row in tf.range(tf.shape(steps)[0]):
                for column, tag in enumerate(tags):
                    tf.summary.write(tag, values[row, column], step=steps[row], metadata=metadata)

    return write


def hyperparameter_table(args):
    rows = "\n".join(f"|{key}|{value}|" for key, value in sorted(vars(args).items()))
    return f"|flag|value|\n|-|-|\n{rows}"


class Progress:
    """Where training stands: T of T_max, frames/s, elapsed, time left, recent score.

    On a terminal, a live tqdm bar; in a file (CI, nohup), one plain line per
    summary interval, so the log stays readable.
    """

    def __init__(self, T, T_max, live):
        self.T_max = T_max
        self.started = time.monotonic()
        self.start_T = T
        self.bar = tqdm.tqdm(total=T_max, initial=T, unit=" steps", unit_scale=True, dynamic_ncols=True) if live else None

    def tick(self, T):
        if self.bar is not None:
            self.bar.update(T - self.bar.n)

    def report(self, T, frames_per_second, recent_score, episodes):
        score = f"{recent_score:.2f} over {episodes} episodes" if episodes else "no episode yet"
        if self.bar is not None:
            self.bar.set_postfix_str(f"{frames_per_second:,.0f} frames/s, score {score}")
            return
        elapsed = time.monotonic() - self.started
        steps_per_second = (T - self.start_T) / elapsed if elapsed > 0 else 0.0
        remaining = (self.T_max - T) / steps_per_second if steps_per_second > 0 else float("inf")
        print(
            f"T {T:,}/{self.T_max:,} | {frames_per_second:,.0f} frames/s | score {score} | "
            f"elapsed {format_duration(elapsed)} | left {format_duration(remaining)}",
            flush=True,
        )

    def write(self, message):
        if self.bar is not None:
            tqdm.tqdm.write(message)
        else:
            print(message, flush=True)

    def close(self):
        if self.bar is not None:
            self.bar.close()


def format_duration(seconds):
    if not math.isfinite(seconds):
        return "?"
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}"
