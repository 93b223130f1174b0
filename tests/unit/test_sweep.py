"""A sweep's plan: trials from grid and random spaces, successive halving's survivors, the leaderboard."""

import re
import uuid
from types import SimpleNamespace

import pytest

from handgesture.config import load_config
from handgesture.errors import ConfigError
from handgesture.sweep import (
    TrialRun,
    check_overrides,
    check_rungs,
    failed_rung,
    leaderboard,
    plan_trials,
    successive_halving,
    survivors,
)


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


def test_a_trial_stopped_early_is_finished_ranked_and_shows_the_epochs_it_reached():
    trials = plan_trials({"optimizer.lr": [0.1, 0.2]}, "grid", 0, 0)
    stopped = TrialRun(0, 0, 5, "run-0-0", "Completed", best_metric=0.8, epochs_trained=2)
    stopped.stopped_early = "stopped early after epoch 2: ..."
    runs = [stopped, TrialRun(1, 0, 5, "run-1-0", "Completed", best_metric=0.6, epochs_trained=5)]
    assert survivors(runs, 0.5) == [0] and failed_rung(runs) is None
    board = leaderboard(trials, runs)
    assert [(r["trial"], r["epochs"], r["stopped_early"]) for r in board] == [(0, 2, True), (1, 5, False)]


def test_a_sweep_s_keys_reach_tensorboard_s_hparams():
    from handgesture.training.summary import hparams_of

    config = load_config(None, ['tracking.hparams=["optimizer.momentum","dataset.image_size"]'])
    hparams = hparams_of(config)
    assert hparams["optimizer.momentum"] == config.optimizer.momentum
    assert hparams["dataset.image_size"] == [224, 224]  # the tracker writes lists as text
    with pytest.raises(ConfigError, match="tracking.hparams: 'optimizer.nope' is not a config key"):
        load_config(None, ['tracking.hparams=["optimizer.nope"]'])


def test_three_trials_at_keep_one_half_keep_two():
    runs = [_run(0, 0, 0.2), _run(1, 0, 0.9), _run(2, 0, 0.5)]
    assert survivors(runs, 0.5) == [1, 2]  # ceil(3 x 0.5): rounding down would keep one


@pytest.mark.parametrize(
    "key", ["train_params.epochs", "train_params", " train_params.epochs"], ids=["key", "section", "padded"]
)
def test_a_space_may_not_search_what_the_rungs_set(key):
    spec = [[{"epochs": 5}]] if key == "train_params" else [5, 10]
    with pytest.raises(ConfigError, match=r"train_params\.epochs is set by the sweep's rungs") as caught:
        plan_trials({"optimizer.lr": [0.1], key: spec}, "grid", count=0, seed=0)
    assert repr(key) in str(caught.value)
    with pytest.raises(ConfigError, match=r"override 'train_params.epochs=4': train_params\.epochs is set"):
        check_overrides(["optimizer.lr=0.1", "train_params.epochs=4"])
    check_overrides(["train_params.epochs_extra=1", "optimizer.lr=0.1"])  # only the key itself and above


@pytest.mark.timeout(10)
def test_a_grid_larger_than_max_trials_is_refused_before_it_is_built():
    million = {f"key{i}": list(range(10)) for i in range(6)}  # 10^6 trials: minutes to enumerate
    with pytest.raises(ConfigError, match=r"the grid has 1000000 trials \(10 key0 x .*max_trials=256"):
        plan_trials(million, "grid", count=0, seed=0)
    huge = {f"key{i}": list(range(100)) for i in range(40)}  # 10^80: never countable by enumeration
    with pytest.raises(ConfigError, match=r"more than max_trials=256"):
        plan_trials(huge, "grid", count=0, seed=0)
    with pytest.raises(ConfigError, match=r"trials=300: more than max_trials=256"):
        plan_trials({"optimizer.lr": {"uniform": [0.1, 0.2]}}, "random", count=300, seed=0)
    assert len(plan_trials({"optimizer.lr": list(range(300))}, "grid", 0, 0, max_trials=300)) == 300
    with pytest.raises(ConfigError, match=r"max_trials must be in \[1, 10000\], got 10001"):
        plan_trials({"optimizer.lr": [0.1]}, "grid", count=0, seed=0, max_trials=10_001)


def _fake_rungs(scores: dict[tuple[int, int], float | None]):
    """A rung runner that scores (trial, rung) as given (None: the run failed), recording its calls."""
    calls = []

    def run_rung(jobs, rung, epochs):
        assert jobs, "a rung with no trials to run"
        calls.append((rung, [trial.number for trial, _ in jobs]))
        return [
            _run(t.number, rung, scores[t.number, rung], "Completed" if scores[t.number, rung] else "Failed")
            for t, _ in jobs
        ]

    return run_rung, calls


def test_halving_stops_at_a_rung_where_every_trial_failed():
    trials = plan_trials({"optimizer.lr": [0.1, 0.2, 0.3]}, "grid", 0, 0)
    run_rung, calls = _fake_rungs({(0, 0): None, (1, 0): None, (2, 0): None})
    runs = successive_halving(trials, [1, 2, 3], 0.5, run_rung)
    assert calls == [(0, [0, 1, 2])] and failed_rung(runs) == 0
    scores = {(0, 0): 0.2, (1, 0): 0.9, (2, 0): 0.5, (1, 1): 0.8, (2, 1): 0.7, (1, 2): 0.9}
    run_rung, calls = _fake_rungs(scores)
    runs = successive_halving(trials, [1, 2, 3], 0.5, run_rung)
    assert calls == [(0, [0, 1, 2]), (1, [1, 2]), (2, [1])] and failed_rung(runs) is None


@pytest.fixture
def sweep_flow(monkeypatch):
    """The sweep flow's function with every train run failing and its artifacts recorded, no server."""
    import flows.sweep as module
    from prefect.states import Failed

    published = {}

    def run_deployment(name, parameters, flow_run_name, **_):
        return SimpleNamespace(id=uuid.uuid4(), state=Failed(message=f"{flow_run_name} crashed"))

    def create_table_artifact(table, key, description):
        published[key] = table

    monkeypatch.setattr(module, "run_deployment", run_deployment)
    monkeypatch.setattr(module, "create_table_artifact", create_table_artifact)
    return module, published


@pytest.mark.timeout(60)
def test_a_sweep_whose_trials_all_fail_publishes_its_leaderboard_and_says_so(sweep_flow, tmp_path):
    module, published = sweep_flow
    space = {"optimizer.lr": [0.1, 0.2, 0.3]}
    with pytest.raises(
        module.SweepFailed, match=r"every trial of rung 1/2 failed \(trial 0: Failed, trial 1"
    ):
        module.sweep_hand_gesture_classifier.fn(
            space, overrides=["dataset.image_size=[96,96]"], storage=str(tmp_path), rungs=[1, 2], promote=True
        )
    board = published["handgesture-sweep-leaderboard"]
    assert [(row["trial"], row["state"], row["f1"]) for row in board] == [
        (0, "Failed", None),
        (1, "Failed", None),
        (2, "Failed", None),
    ]
    assert len(published["handgesture-sweep-rungs"]) == 3  # rung 1 only: nothing was left to resume
