"""A sweep's plan: trials from grid and random spaces, successive halving's survivors, the leaderboard."""

import re

import pytest

from handgesture.config import load_config
from handgesture.errors import ConfigError
from handgesture.sweep import TrialRun, check_rungs, leaderboard, plan_trials, survivors


def test_a_grid_is_every_combination_as_overrides_the_config_accepts():
    space = {"optimizer.lr": [0.01, 0.03], "model.name": ["ResNet18", "MobileNetV3_small"]}
    trials = plan_trials(space, "grid", count=0, seed=0)
    assert [t.overrides for t in trials] == [
        ("optimizer.lr=0.01", "model.name=ResNet18"),
        ("optimizer.lr=0.01", "model.name=MobileNetV3_small"),
        ("optimizer.lr=0.03", "model.name=ResNet18"),
        ("optimizer.lr=0.03", "model.name=MobileNetV3_small"),
    ]
    config = load_config(None, [*trials[3].overrides, "dataset.image_size=[96,96]"])
    assert (config.optimizer.lr, config.model.name) == (0.03, "MobileNetV3_small")


def test_random_points_are_seeded_and_inside_their_ranges():
    space = {
        "optimizer.lr": {"log_uniform": [1e-4, 1e-1]},
        "optimizer.momentum": {"uniform": [0.8, 0.99]},
        "scheduler.warmup_steps": {"int": [0, 100]},
        "dataset.image_size": [[128, 128], [224, 224]],
    }
    trials = plan_trials(space, "random", count=20, seed=7)
    assert trials == plan_trials(space, "random", count=20, seed=7) != plan_trials(space, "random", 20, 8)
    for trial in trials:
        config = load_config(None, list(trial.overrides))
        assert 1e-4 <= config.optimizer.lr <= 1e-1 and 0.8 <= config.optimizer.momentum <= 0.99
        assert 0 <= config.scheduler.warmup_steps <= 100
        assert config.dataset.image_size in ([128, 128], [224, 224])


@pytest.mark.parametrize(
    ("space", "mode", "message"),
    [
        ({}, "grid", "search space is empty"),
        ({"optimizer.lr": []}, "grid", "'optimizer.lr': expected a non-empty list"),
        ({"optimizer.lr": {"uniform": [0.1, 0.2]}}, "grid", "expected a non-empty list, got"),
        ({"optimizer.lr": {"log_uniform": [0, 1]}}, "random", "log_uniform"),
        ({"optimizer.lr": [0.1]}, "bayes", "sweep mode must be one of ['grid', 'random']"),
    ],
)
def test_a_bad_space_names_the_key_and_what_was_expected(space, mode, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        plan_trials(space, mode, count=4, seed=0)


def test_rungs_increase_and_keep_is_a_fraction():
    check_rungs([1, 3, 9], 0.5)
    for rungs, keep in (([], 0.5), ([2, 2], 0.5), ([0, 1], 0.5), ([1, 2], 1.0)):
        with pytest.raises(ConfigError):
            check_rungs(rungs, keep)


def _run(trial, rung, f1, state="Completed"):
    return TrialRun(trial, rung, rung + 1, f"run-{trial}-{rung}", state, best_metric=f1)


def test_the_best_fraction_survives_and_failed_trials_never_do():
    runs = [_run(0, 0, 0.2), _run(1, 0, 0.9), _run(2, 0, None, "Failed"), _run(3, 0, 0.5)]
    assert survivors(runs, 0.5) == [1, 3]
    assert survivors(runs, 0.1) == [1]  # at least one
    assert survivors([_run(0, 0, 0.5), _run(1, 0, 0.5)], 0.5) == [0]  # a tie: the lower number


def test_the_leaderboard_shows_each_trial_at_its_last_rung_best_first():
    trials = plan_trials({"optimizer.lr": [0.1, 0.2, 0.3]}, "grid", 0, 0)
    runs = [_run(0, 0, 0.4), _run(1, 0, 0.6), _run(2, 0, None, "Failed"), _run(1, 1, 0.7)]
    board = leaderboard(trials, runs)
    assert [(r["trial"], r["best_f1"], r["epochs"], r["rung"], r["state"]) for r in board] == [
        (1, 0.7, 2, 2, "Completed"),
        (0, 0.4, 1, 1, "Completed"),
        (2, None, 1, 1, "Failed"),
    ]
    assert board[0]["overrides"] == "optimizer.lr=0.2" and board[0]["flow_run"] == "run-1-1"


def test_a_sweep_s_keys_reach_tensorboard_s_hparams():
    from handgesture.training.summary import hparams_of

    config = load_config(None, ['tracking.hparams=["optimizer.momentum","dataset.image_size"]'])
    hparams = hparams_of(config)
    assert hparams["optimizer.momentum"] == config.optimizer.momentum
    assert hparams["dataset.image_size"] == [224, 224]  # the tracker writes lists as text
    with pytest.raises(ConfigError, match="tracking.hparams: 'optimizer.nope' is not a config key"):
        load_config(None, ['tracking.hparams=["optimizer.nope"]'])
