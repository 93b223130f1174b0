"""Early stopping (HaGRID v2's rule) and the schedules after the warm-up: StepLR, ReduceLROnPlateau; both
resume exactly, and a run the rule stopped stays stopped unless resumed with more epochs."""

import json
from pathlib import Path

import pytest
import torch

from handgesture.config import load_config
from handgesture.errors import ConfigError
from handgesture.report import render_report
from handgesture.training import run_training
from handgesture.training.early_stopping import StopRule, StopState, early_stop
from handgesture.training.setup import _plateau, _scheduler
from tests.unit.training.test_resume import assert_identical

# The rule needs a gain of more than 0.99 F1 to count an epoch as the best: epoch 1 is (from none), no later
# one is, so a run stops after epoch 2.
STOPS_AFTER_TWO = ("train_params.early_stopping.epochs=1", "train_params.early_stopping.metric=0.99")
# Every epoch after the first is "no better" (a loss lower by 100 would be), so with no patience the rate
# drops by `factor` at the end of epochs 2, 3, ...
PLATEAU = (
    "scheduler.name=ReduceLROnPlateau",
    "scheduler.patience=0",
    "scheduler.threshold_mode=abs",
    "scheduler.threshold=100",
    "checkpoint.keep_last=1000",
)


def decisions(metrics: list[float], rule: StopRule) -> list[bool]:
    state, stops = StopState(), []
    for epoch, metric in enumerate(metrics, start=1):
        state, stop = early_stop(state, rule, epoch, metric)
        stops.append(stop)
    return stops


def test_the_rule_stops_when_the_epochs_since_the_best_reach_n_without_a_gain_beyond_delta():
    rule = StopRule(epochs=2, delta=0.01)
    # 0.505 is no gain on 0.5 beyond 0.01; 0.52 is (the best from epoch 3); 0.525 is not: 2 epochs since it.
    assert decisions([0.5, 0.505, 0.52, 0.52, 0.525], rule) == [False, False, False, False, True]
    assert decisions([0.5, 0.5, 0.5], StopRule(epochs=0, delta=0.01)) == [False] * 3  # 0: off
    assert decisions([0.5, 0.6, 0.7, 0.8], StopRule(epochs=1, delta=0.0)) == [False] * 4
    assert decisions([0.5, 0.5], StopRule(epochs=1, delta=0.0)) == [False, True]  # equal is no gain


def test_an_unknown_scheduler_is_one_error_naming_it_and_the_supported_ones():
    with pytest.raises(ConfigError) as caught:
        load_config(None, ["scheduler.name=OneCycleLR"])
    message = str(caught.value)
    assert "scheduler.name" in message and "'OneCycleLR'" in message
    assert all(name in message for name in ("none", "CosineAnnealingLR", "StepLR", "ReduceLROnPlateau"))


def rates(config, steps: int, steps_per_epoch: int) -> list[float]:
    optimizer = torch.optim.SGD(torch.nn.Linear(2, 2).parameters(), lr=config.optimizer.lr)
    scheduler, seen = _scheduler(config, optimizer, steps_per_epoch), []
    for _ in range(steps):
        optimizer.step()
        scheduler.step()
        seen.append(optimizer.param_groups[0]["lr"])
    return seen


def test_step_lr_decays_at_every_step_size_th_epoch_end_after_the_warm_up():
    settings = ["optimizer.lr=0.1", "scheduler.warmup_steps=2", "scheduler.start_factor=0.5"]
    config = load_config(
        None, [*settings, "scheduler.name=StepLR", "scheduler.step_size=2", "scheduler.gamma=0.5"]
    )
    seen = rates(config, 12, steps_per_epoch=3)  # epochs of 3 steps: decays after steps 6 and 12
    assert seen == pytest.approx([0.075, 0.1, 0.1, 0.1, 0.1, 0.05, 0.05, 0.05, 0.05, 0.05, 0.05, 0.025])
    assert rates(load_config(None, settings), 12, 3) == pytest.approx([0.075] + [0.1] * 11)  # none: stays


def test_the_plateau_is_stepped_per_epoch_and_built_only_when_named():
    optimizer = torch.optim.SGD(torch.nn.Linear(2, 2).parameters(), lr=0.1)
    assert _plateau(load_config(None, []).scheduler, optimizer) is None
    plateau = _plateau(load_config(None, ["scheduler.name=ReduceLROnPlateau"]).scheduler, optimizer)
    assert (plateau.mode, plateau.factor) == ("min", 0.1)  # v2's default {mode: min, factor: 0.1}


def final_state(uri: str) -> dict:
    checkpoint = torch.load(uri, weights_only=True)
    keys = (
        "state_dict",
        "optimizer_state_dict",
        "scheduler_state_dict",
        "plateau_state_dict",
        "early_stopping",
    )
    return {key: checkpoint[key] for key in (*keys, "epoch")}


def epoch_checkpoint(result, epoch: int) -> str:
    manifest = json.loads((Path(result.run_uri) / "manifest.json").read_text())
    return next(e["uri"] for e in manifest["checkpoints"] if e["epoch"] == epoch and e["position"] == 0)


@pytest.mark.slow
def test_a_plateau_reduced_rate_stays_reduced_through_an_exact_resume(tiny_config):
    config = tiny_config(*PLATEAU, "train_params.epochs=3", "optimizer.lr=0.01")
    straight = run_training(config, run_name="straight")
    after_two = torch.load(epoch_checkpoint(straight, 2), weights_only=True)
    assert after_two["optimizer_state_dict"]["param_groups"][0]["lr"] == pytest.approx(0.001)  # reduced

    resumed = run_training(config, run_name="resumed", resume=epoch_checkpoint(straight, 2))

    assert_identical(final_state(straight.last_checkpoint), final_state(resumed.last_checkpoint))
    assert resumed.history == straight.history
    final = torch.load(resumed.last_checkpoint, weights_only=True)["optimizer_state_dict"]
    assert final["param_groups"][0]["lr"] == pytest.approx(0.0001)  # epoch 3 was no better either


@pytest.mark.slow
def test_an_early_stop_is_exact_reported_and_stays_stopped_unless_resumed_with_more_epochs(tiny_config):
    straight = run_training(tiny_config(*STOPS_AFTER_TWO, "train_params.epochs=4"), run_name="straight")
    assert straight.epochs == 2 and "stopped early after epoch 2" in straight.stopped_early
    assert f"- {straight.stopped_early}" in render_report(straight, "MobileNetV3_small")

    first = run_training(tiny_config(*STOPS_AFTER_TWO, "train_params.epochs=1"), run_name="first")
    resumed = run_training(
        tiny_config(*STOPS_AFTER_TWO, "train_params.epochs=4"),
        run_name="resumed",
        resume=first.last_checkpoint,
    )
    assert resumed.epochs == 2 and resumed.stopped_early == straight.stopped_early
    assert_identical(final_state(straight.last_checkpoint), final_state(resumed.last_checkpoint))

    same = run_training(
        tiny_config(*STOPS_AFTER_TWO, "train_params.epochs=4"), resume=straight.last_checkpoint
    )
    assert (same.epochs, same.global_step, same.stopped_early) == (
        2,
        straight.global_step,
        straight.stopped_early,
    )

    more = run_training(
        tiny_config(*STOPS_AFTER_TWO, "train_params.epochs=5"), resume=straight.last_checkpoint
    )
    assert more.epochs == 3 and "stopped early after epoch 3" in more.stopped_early  # on, then the rule again


@pytest.mark.slow
def test_a_checkpoint_without_the_new_state_resumes_from_its_own_best(tiny_config, tmp_path):
    first = run_training(tiny_config("train_params.epochs=1"), run_name="first")
    old = torch.load(first.last_checkpoint, weights_only=True)
    del old["early_stopping"], old["plateau_state_dict"]
    torch.save(old, tmp_path / "old.pth")
    resumed = run_training(
        tiny_config(*STOPS_AFTER_TWO, *PLATEAU, "train_params.epochs=3"), resume=str(tmp_path / "old.pth")
    )
    assert resumed.epochs == 2 and "stopped early after epoch 2" in resumed.stopped_early  # best: epoch 1
