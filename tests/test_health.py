"""A run whose network has died says so: dead units per layer in TensorBoard, and one warning line."""

import time

import numpy as np
import pytest
import tensorflow as tf

import async_a3c
import async_q_nstep
from async_runtime import driver, health
from async_runtime.health import HealthCheck, StateSample, dead_fractions, output_spread
from async_runtime.models import actor_critic_outputs_numpy
from build_model import TORSO_WEIGHTS, build_actor_critic_network, build_network, q_values_numpy

HIDDEN_BIAS = TORSO_WEIGHTS - 1


def states(count, seed=0):
    return list(np.random.default_rng(seed).integers(0, 256, (count, 84, 84, 4), dtype=np.uint8))


def weights_of(network):
    return [variable.numpy() for variable in network.trainable_variables]


def killed(weights):
    """Every hidden unit's input pushed far below zero: none can fire, and no gradient reaches them."""
    weights = [array.copy() for array in weights]
    weights[HIDDEN_BIAS][:] = -1e4
    return weights


def test_a_fresh_network_has_live_units_and_outputs_that_follow_the_state():
    weights = weights_of(build_network(6))
    fractions = dead_fractions(weights, states(16))
    assert len(fractions) == 3
    assert all(fraction < 0.5 for fraction in fractions)
    assert output_spread(q_values_numpy, weights, states(16)) > 1e-4


@pytest.mark.parametrize(
    "network, outputs_numpy",
    [(build_network, q_values_numpy), (build_actor_critic_network, actor_critic_outputs_numpy)],
    ids=["Q", "actor-critic"],
)
def test_a_killed_hidden_layer_is_all_dead_and_its_outputs_ignore_the_state(network, outputs_numpy):
    weights = killed(weights_of(network(6)))
    conv1, conv2, hidden = dead_fractions(weights, states(16))
    assert hidden == 1.0 and conv1 < 0.5 and conv2 < 0.5
    assert output_spread(outputs_numpy, weights, states(16)) == 0.0


def test_a_layer_counts_a_convolution_channel_as_one_unit():
    weights = weights_of(build_network(6))
    dead_before = dead_fractions(weights, states(16))[0]  # a fresh layer may hold a channel silent on these states
    alive = [
        channel for channel in range(16)
        if dead_fractions(killed_channels(weights, [channel]), states(16))[0] > dead_before
    ]
    weights = killed_channels(weights, alive[:4])
    assert dead_fractions(weights, states(16))[0] == pytest.approx(dead_before + 4 / 16)


def killed_channels(weights, channels):
    """The first convolution's ``channels`` silenced through their biases."""
    weights = [array.copy() for array in weights]
    weights[1][channels] = -1e4
    return weights


def test_the_sample_keeps_the_latest_distinct_states():
    sample = StateSample()
    frames = states(health.SAMPLE_STATES + 10)
    sample.add(None)
    for frame in frames:
        sample.add(frame)
        sample.add(frame)  # the same state again (the thread has not moved): kept once
    assert len(sample.states) == health.SAMPLE_STATES
    kept = {frame.tobytes() for frame in sample.states}
    assert kept == {frame.tobytes() for frame in frames[10:]}


def test_the_warning_comes_once_after_three_bad_checks_in_a_row_and_names_the_learning_rate():
    check = HealthCheck(q_values_numpy, learning_rate=1e-3, epsilon_RMSProp=1e-5)
    silent = {"conv1": 0.0, "conv2": 0.1, "hidden": 0.99}
    alive = {"conv1": 0.0, "conv2": 0.1, "hidden": 0.6}
    assert check.warning(silent, 0.5) is None
    assert check.warning(silent, 0.5) is None
    assert check.warning(alive, 0.5) is None  # the count starts again
    messages = [check.warning(silent, 0.5) for _ in range(3)]
    assert messages[:2] == [None, None]
    assert "may be dying: 99% of the hidden layer's units never fire" in messages[-1]
    assert "--learning_rate 0.001" in messages[-1] and "--epsilon_RMSProp 1e-05" in messages[-1]
    assert check.warning(silent, 0.5) is None  # said once


def test_outputs_that_ignore_the_state_are_a_dead_network_said_even_after_a_dying_one():
    check = HealthCheck(q_values_numpy, learning_rate=1e-3, epsilon_RMSProp=1e-5)
    silent = {"conv1": 0.0, "conv2": 0.1, "hidden": 0.99}
    alive = {"conv1": 0.0, "conv2": 0.1, "hidden": 0.6}
    messages = [check.warning(silent, 0.5) for _ in range(3)] + [check.warning(alive, 0.0) for _ in range(4)]
    assert messages[2].startswith("warning: the network may be dying")
    assert messages[3:5] == [None, None]  # three flat checks in a row, counted from the first flat one
    assert messages[5].startswith("warning: the network is dead: its outputs are the same")
    assert "hidden" not in messages[5] and "--learning_rate 0.001" in messages[5]
    assert messages[6] is None


# -- in a real run ----------------------------------------------------------------

RUN = ["--game", "Catch-v0", "--num_actor_threads", "2", "--T_max", "3000", "--summary_interval", "0.2"]
# Each thread paced to at most one step per STEP_SECONDS, so a run lasts at least 7.5 s however fast the
# machine: time for the driver, sampling twice a second, to collect its states, then to find the network
# dead at three summary intervals in a row. (Unpaced, 2,000 steps took under 4 s on one machine.)
STEP_SECONDS = 0.005


def train_catch(module, tmp_path, kill):
    args = module.parse_args([*RUN, "--summary_dir", str(tmp_path / "summaries"),
                              "--checkpoint_dir", str(tmp_path / "checkpoints"), "--experiment", "health"])

    def thread(learner, shared, args):
        if kill:
            shared.theta.arrays[HIDDEN_BIAS][:] = -1e4
            learner.sync_local()
        step = learner.step

        def paced_step(action):
            time.sleep(STEP_SECONDS)
            return step(action)

        learner.step = paced_step
        module.actor_learner_thread(learner, shared, args)

    assert driver.train(args, thread, module.max_segment_steps(args), module.model(args)) == 0
    values = {}
    for path in (tmp_path / "summaries" / "health").glob("events.out.tfevents.*"):
        for event in tf.compat.v1.train.summary_iterator(str(path)):
            for value in event.summary.value:
                if value.tag.startswith("health/"):
                    values.setdefault(value.tag, []).append(float(tf.make_ndarray(value.tensor)))
    return values


@pytest.mark.parametrize("module", [async_q_nstep, async_a3c], ids=["n-step Q", "A3C"])
def test_a_run_whose_network_died_logs_its_dead_units_and_warns(module, tmp_path, capsys):
    values = train_catch(module, tmp_path, kill=True)
    assert values["health/dead_units_hidden"][-1] == 1.0
    assert values["health/output_spread"][-1] == 0.0
    assert capsys.readouterr().out.count("warning: the network is dead") == 1


def test_a_live_run_logs_its_units_and_does_not_warn(tmp_path, capsys):
    values = train_catch(async_q_nstep, tmp_path, kill=False)
    assert {"health/dead_units_conv1", "health/dead_units_conv2", "health/dead_units_hidden"} <= values.keys()
    assert values["health/dead_units_hidden"][-1] < health.DEAD_HIDDEN
    assert "warning" not in capsys.readouterr().out

