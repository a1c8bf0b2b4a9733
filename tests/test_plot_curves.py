"""plot_curves.py on event files written the way training writes them."""

import time

import numpy as np
import pytest
import tensorflow as tf
from matplotlib.image import imread

from plot_curves import load_scores, main, smooth

PAUSE = 1.0  # seconds the resumed run is stopped between its two processes
C0, C1 = (0.122, 0.467, 0.706), (1.0, 0.498, 0.055)  # matplotlib's first two colours


def write_process(directory, start_T, episodes):
    """One training process's event file: hyperparameters at its start T, then per-episode and rate scalars."""
    writer = tf.summary.create_file_writer(str(directory))
    with writer.as_default():
        tf.summary.text("hyperparameters", "|flag|value|", step=start_T)
        for T, score in episodes:
            tf.summary.scalar("episode/score", score, step=T)
            tf.summary.scalar("episode/length", 50, step=T)
            tf.summary.scalar("charts/frames_per_second", 1000.0, step=T)
    writer.close()


def rising_scores(count, seed):
    """Integer scores (exact in float32) that rise from about 0 to 30, with noise."""
    noise = np.random.default_rng(seed).integers(-6, 7, size=count)
    return np.maximum(0, np.arange(count) * 30 // count + noise).astype(float)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Two fake runs: 'steady', one process of 400 episodes; 'resumed', killed and resumed from a checkpoint."""
    root = tmp_path_factory.mktemp("summaries")
    steady_scores = rising_scores(400, seed=1)
    write_process(root / "steady", 0, [(250 * (i + 1), s) for i, s in enumerate(steady_scores)])

    # The first process logs 200 episodes at T = 200, 400, ... 40,000, but its
    # last checkpoint is at T = 36,000: the second process replays from there.
    scores = rising_scores(300, seed=2)
    lost = [-100.0] * 20  # episodes 180..199 of the first process, past its checkpoint
    started = time.time()
    write_process(root / "resumed", 0, [(200 * (i + 1), s) for i, s in enumerate([*scores[:180], *lost])])
    time.sleep(PAUSE)
    write_process(root / "resumed", 36_000, [(200 * (i + 1), scores[i]) for i in range(180, 300)])
    elapsed = time.time() - started
    return {"root": root, "steady": steady_scores, "resumed": scores, "resumed_elapsed": elapsed}


def test_plot_writes_a_readable_png(runs, tmp_path, capsys):
    output = tmp_path / "docs" / "curves.png"  # its folder does not exist yet
    status = main([str(runs["root"] / "steady"), str(runs["root"] / "resumed"), "--output", str(output),
                   "--title", "Fake game", "--smoothing", "50"])
    assert status == 0
    assert capsys.readouterr().out.strip() == f"wrote {output}: steady 400 episodes, resumed 300 episodes"
    assert output.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    image = imread(output)
    assert image.shape == (675, 1800, 4)  # 12 x 4.5 inches at 150 dpi
    for colour in (C0, C1):  # each run's bold lines, not just its legend entry
        pixels = np.all(np.abs(image[..., :3] - colour) < 0.02, axis=-1).sum()
        assert pixels > 2000


def test_labels_name_the_runs(runs, tmp_path, capsys):
    output = tmp_path / "curves.png"
    assert main([str(runs["root"] / "steady"), "--output", str(output), "--labels", "1-step Q"]) == 0
    assert capsys.readouterr().out.strip() == f"wrote {output}: 1-step Q 400 episodes"
    assert output.stat().st_size > 10_000


def test_load_scores_of_one_process(runs):
    T, seconds, scores = load_scores(str(runs["root"] / "steady"))
    assert len(T) == len(seconds) == len(scores) == 400
    np.testing.assert_array_equal(T, 250 * np.arange(1, 401))
    np.testing.assert_array_equal(scores, runs["steady"])
    assert 0 <= seconds[0] and np.all(np.diff(seconds) >= 0)


def test_load_scores_merges_a_resumed_run(runs):
    T, seconds, scores = load_scores(str(runs["root"] / "resumed"))
    # Episodes up to the checkpoint's T from the first process, all of the second's.
    np.testing.assert_array_equal(T, 200 * np.arange(1, 301))
    np.testing.assert_array_equal(scores, runs["resumed"])
    assert np.all(np.diff(seconds) >= 0)
    # The pause between the processes is not training time.
    assert 0 < seconds[-1] <= runs["resumed_elapsed"] - PAUSE


def test_smooth():
    np.testing.assert_allclose(smooth(np.full(500, 7.0), 100), 7.0)
    np.testing.assert_allclose(smooth([1, 2, 3, 4], 2), [1, 1.5, 2.5, 3.5])
    # A window longer than the data: the mean of everything so far.
    np.testing.assert_allclose(smooth([2, 4, 0, 6], 100), [2, 3, 2, 3])
    assert len(smooth(np.arange(37.0), 10)) == 37
    assert len(smooth([], 10)) == 0


def write_rates_only(directory):
    writer = tf.summary.create_file_writer(str(directory))
    with writer.as_default():
        tf.summary.scalar("charts/frames_per_second", 1000.0, step=100)
    writer.close()


@pytest.mark.parametrize(
    "case, message",
    [
        ("empty folder", "holds no TensorBoard event files"),
        ("missing folder", "is not a directory"),
        ("no episode yet", "has no episode/score summaries"),
        ("labels mismatch", "2 --labels for 1 run directories"),
    ],
)
def test_bad_input_is_one_line_and_status_2(case, message, runs, tmp_path, capsys):
    run_dir, extra = tmp_path / "run", []
    if case == "empty folder":
        run_dir.mkdir()
    elif case == "no episode yet":
        write_rates_only(run_dir)
    elif case == "labels mismatch":
        run_dir = runs["root"] / "steady"
        extra = ["--labels", "a", "b"]
    output = tmp_path / "curves.png"
    assert main([str(run_dir), "--output", str(output), *extra]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: ") and message in err
    assert not output.exists()
