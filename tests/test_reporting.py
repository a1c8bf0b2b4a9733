"""TensorBoard summaries: the episodes' batched writer writes what tf.summary.scalar writes, one by one."""

import numpy as np
import tensorflow as tf

from async_runtime.reporting import episode_writer


def summary_events(directory):
    """(step, tag, value, metadata bytes) of every summary value in ``directory``'s event files, in order."""
    events = []
    for path in sorted(directory.glob("events.out.tfevents.*")):
        for event in tf.compat.v1.train.summary_iterator(str(path)):
            for value in event.summary.value:
                events.append((event.step, value.tag, float(tf.make_ndarray(value.tensor)),
                               value.metadata.SerializeToString()))
    return events


def test_batched_episode_writer_writes_what_summary_scalar_writes(tmp_path):
    tags = ["episode/score", "episode/length", "episode/mean_max_q"]
    steps = np.array([9, 18, 18, 40], np.int64)  # two games may end at the same T
    values = np.array([[1, 9, 0.5], [-1, 9, 0.25], [0, 9, -0.125], [21, 3000, 2.0]], np.float32)

    batched = tf.summary.create_file_writer(str(tmp_path / "batched"))
    write = episode_writer(batched, tags)
    write(steps[:3], values[:3])
    write(steps[3:], values[3:])
    write(steps[:0], values[:0])  # a wake-up with no finished game
    batched.close()

    one_by_one = tf.summary.create_file_writer(str(tmp_path / "one_by_one"))
    with one_by_one.as_default():
        for step, row in zip(steps, values):
            for tag, value in zip(tags, row):
                tf.summary.scalar(tag, value, step=step)
    one_by_one.close()

    written = summary_events(tmp_path / "batched")
    assert [(step, tag) for step, tag, _, _ in written] == [(9, tag) for tag in tags] + [
        (T, tag) for T in (18, 18, 40) for tag in tags
    ]
    assert written == summary_events(tmp_path / "one_by_one")
