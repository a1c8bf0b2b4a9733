"""The scripts end to end, as a user runs them: real processes on a real ALE game."""

import importlib
import json
import re

import pytest
import tensorflow as tf

from conftest import checkpoint_T, event_tags, run_script

GAME = "BreakoutNoFrameskip-v4"
SHORT_RUN = ["--game", GAME, "--num_actor_threads", "2", "--summary_interval", "1", "--experiment", "smoke"]
Q_TAGS = {"episode/mean_max_q", "episode/epsilon", "losses/td_loss"}
TAGS = {
    "episode/score", "episode/length", "charts/frames_per_second", "charts/learning_rate", "hyperparameters"
}
TAGS_OF = {
    "async_q_nstep.py": TAGS | Q_TAGS,
    "async_q_1step.py": TAGS | Q_TAGS,
    "async_sarsa_1step.py": TAGS | Q_TAGS,
    "async_a3c.py": TAGS | {"episode/mean_value", "losses/actor_critic_loss"},
}


# Every learner in the full tier; `make test` takes n-step Q's, whose driver, checkpoints and testing the others share.
@pytest.mark.parametrize(
    "script", [script if script == "async_q_nstep.py" else pytest.param(script, marks=pytest.mark.slow) for script in TAGS_OF]
)
def test_train_resume_and_test(script, tmp_path, run_dirs):
    first = run_script(script, *SHORT_RUN, "--T_max", "3000", *run_dirs)
    summaries, checkpoints = tmp_path / "summaries" / "smoke", tmp_path / "checkpoints" / "smoke"
    tags = event_tags(summaries)
    assert TAGS_OF[script] <= tags
    assert script != "async_a3c.py" or "episode/epsilon" not in tags, "A3C does not explore epsilon-greedily"
    first_T = checkpoint_T(tf.train.latest_checkpoint(str(checkpoints)))
    assert first_T >= 3000
    assert re.search(r"T [\d,]+/3,000 \| [\d,]+ frames/s", first.stdout)
    assert "absl::InitializeLog" not in first.stderr and "oneDNN" not in first.stderr, "TensorFlow's notices"
    assert ("final epsilon of each thread" in first.stdout) == (script != "async_a3c.py")

    second = run_script(script, *SHORT_RUN, "--T_max", "5000", *run_dirs)
    assert f"at T = {first_T:,}" in second.stdout
    assert checkpoint_T(tf.train.latest_checkpoint(str(checkpoints))) >= 5000

    tested = run_script(
        script, *SHORT_RUN, "--testing", "--num_eval_episodes", "2", "--eval_max_episode_frames", "2000", *run_dirs
    )
    scores = re.findall(r"episode \d/2: score (-?[\d.]+)", tested.stdout)
    assert len(scores) == 2
    assert "mean score" in tested.stdout
    report = json.loads(next(checkpoints.glob("*.eval.json")).read_text())
    assert report["scores"] == [float(score) for score in scores]
    assert report["eval_epsilon"] == (0.0 if script == "async_a3c.py" else 0.05), "a sampled policy gets no more"
    assert "eval/mean_score" in event_tags(summaries / "eval")


def help_of(script, capsys):
    """--help's text, from the script's own parser in this process (a fresh process costs a TensorFlow import)."""
    with pytest.raises(SystemExit) as exit_info:
        importlib.import_module(script.removesuffix(".py")).parse_args(["--help"])
    assert exit_info.value.code == 0
    return capsys.readouterr().out


def test_help_from_the_command_line():
    completed = run_script("async_q_nstep.py", "--help")
    assert completed.stdout.startswith("usage: async_q_nstep.py") and "--num_steps_Q" in completed.stdout


def test_help_documents_every_flag(capsys):
    epsilon_flags = ["--final_epsilon_choices", "--anneal_epsilon_timesteps", "--target_network_update_frequency"]
    for script, own_flags in [
        ("async_q_nstep.py", ["--num_steps_Q", *epsilon_flags]),
        ("async_q_1step.py", ["--async_update_frequency", *epsilon_flags]),
        ("async_sarsa_1step.py", ["--async_update_frequency", *epsilon_flags]),
        ("async_a3c.py", ["--num_steps", "--entropy_beta", "--value_loss_weight"]),
    ]:
        help_text = help_of(script, capsys)
        for flag in ["--experiment", "--game", "--num_actor_threads", "--T_max", "--testing", "--no-testing",
                     "--checkpoint_file", "--noop_max", "--episodic_life", "--no-episodic_life", *own_flags]:
            assert flag in help_text
        if script == "async_a3c.py":
            assert not any(flag in help_text for flag in epsilon_flags), "flags A3C would ignore"
        assert "(default: None)" not in help_text  # a flag without one says what it does instead
        assert "(default: SpaceInvadersNoFrameskip-v4)" in help_text  # the seed's game, the paper's protocol
