"""HaGRID v2's training snapshots are ours to load, inspect and continue (issue 23)."""

import json
import logging

import pytest
import torch
from handgesture_cli.main import main

from handgesture.checkpoints.hagrid_v2 import from_v2_snapshot
from handgesture.checkpoints.locate import resolve_checkpoint
from handgesture.config import load_config
from handgesture.errors import CheckpointError, InputError
from handgesture.full_frame import FullFrameClassifier
from handgesture.inference import load_model
from handgesture.labels import HAGRID_V2_TARGETS
from handgesture.metrics import BEST_METRIC
from handgesture.models import build_model
from handgesture.training.setup import build_trainer
from handgesture.training.state import TrainingState
from tests.hagrid_v2 import V2_LR, v2_model, v2_normalise, write_v2_snapshot

STEPS_PER_EPOCH = 3


def v2_config(*overrides: str):
    """Our run config for continuing a v2 snapshot of MobileNetV3_small at v2's 224 px (never run here),
    with v2's ReduceLROnPlateau; `optimizer.lr` is not the snapshot's: a test sees which one a run takes."""
    targets = f"dataset.targets=[{','.join(HAGRID_V2_TARGETS)}]"
    settings = ["model.name=MobileNetV3_small", "model.full_frame=true", "dataset.image_size=[224,224]"]
    schedule = ["scheduler.name=ReduceLROnPlateau", "scheduler.warmup_steps=5", "optimizer.lr=0.05"]
    return load_config(None, [*settings, targets, *schedule, *overrides])


def restored(path, config=None):
    config = config or v2_config()
    trainer = build_trainer(config, torch.device("cpu"), STEPS_PER_EPOCH)
    checkpoint = resolve_checkpoint(str(path)).checkpoint
    TrainingState(trainer, config, STEPS_PER_EPOCH).restore(checkpoint, str(path))
    return trainer


@pytest.mark.parametrize("multi_gpu", [False, True])  # hagrid_model.<key> on one GPU, bare keys on several
def test_a_v2_snapshot_loads_by_its_weights_and_gives_the_same_logits(tmp_path, multi_gpu):
    path = tmp_path / "MobileNetV3_small_epoch:4_F1Score:0.5_loss:0.75.pth"
    theirs = write_v2_snapshot(path, multi_gpu=multi_gpu)
    loaded = load_model(str(path))
    assert (loaded.model_name, loaded.full_frame, loaded.epoch) == ("MobileNetV3_small", True, 5)
    assert loaded.class_names == HAGRID_V2_TARGETS and loaded.image_size == [224, 224]
    images = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(loaded.model(images)["gesture"], theirs(v2_normalise(images)))


@pytest.mark.parametrize("prefixes", [2, 1])  # v2's ViT wrapper inside ClassifierModel on one GPU; alone
def test_vitb16_keeps_its_own_wrapper_in_both_forms(prefixes):
    with torch.device("meta"):
        ours = build_model("VitB16", 34, image_size=32, full_frame=True).state_dict()
    snapshot = {"MODEL_STATE": {"hagrid_model." * (prefixes - 1) + k: v for k, v in ours.items()}}
    snapshot |= {"EPOCHS_RUN": 0, "Loss": 1.0, "Metric": {"F1Score": 0.1}}
    upgraded = from_v2_snapshot(snapshot, "vit.pth")
    assert set(upgraded["state_dict"]) == set(ours) and upgraded["model_name"] == "VitB16"
    assert upgraded["image_size"] == [32, 32]


def test_inspect_reports_what_a_v2_snapshot_holds(tmp_path, capsys):
    write_v2_snapshot(tmp_path / "s.pth", epochs_run=2)
    assert main(["inspect", str(tmp_path / "s.pth")]) == 0
    info = json.loads(capsys.readouterr().out)
    assert (info["origin"], info["model_name"], info["full_frame"], info["epoch"]) == (
        "hagrid_v2",
        "MobileNetV3_small",
        True,
        3,
    )
    assert info["metrics"][BEST_METRIC] == 0.5


def test_without_no_gesture_the_classes_are_v2s_33_gestures(tmp_path):
    write_v2_snapshot(tmp_path / "s.pth", num_classes=33)
    assert load_model(str(tmp_path / "s.pth")).class_names == HAGRID_V2_TARGETS[:-1]


@pytest.mark.parametrize("metric", [0.625, torch.tensor(0.625)])  # v2 keeps torchmetrics' 0-dim tensor
def test_continuing_starts_after_epochs_run_at_the_snapshots_reduced_rate(tmp_path, metric):
    path = tmp_path / "s.pth"
    write_v2_snapshot(path, epochs_run=4, metric=metric)
    trainer = restored(path)
    progress = trainer.progress
    assert (progress.epoch, progress.global_step) == (5, 5 * STEPS_PER_EPOCH)  # EPOCHS_RUN + 1
    assert (progress.best_metric, trainer.stop.best) == (0.625, 0.625)  # a new best must beat v2's
    assert trainer.optimizer.state_dict()["state"]  # v2's momentum buffers came along
    assert (trainer.plateau.best, trainer.plateau.last_epoch) == (1.0, 2)  # where v2's plateau stood
    reduced = V2_LR * 0.1
    assert trainer.optimizer.param_groups[0]["lr"] == pytest.approx(reduced, rel=1e-12)
    trainer.optimizer.step()  # the first resumed step: our warm-up neither restarts nor lifts the rate
    trainer.scheduler.step()
    assert trainer.optimizer.param_groups[0]["lr"] == pytest.approx(reduced, rel=1e-12)


def test_a_snapshot_without_optimizer_state_continues_with_a_fresh_one_and_says_so(tmp_path, caplog):
    path = tmp_path / "s.pth"
    write_v2_snapshot(path, OPTIMIZER_STATE=None)
    with caplog.at_level(logging.INFO, logger="handgesture.training.state"):
        trainer = restored(path)
    assert "holds no optimizer state: the optimizer starts fresh" in caplog.text
    assert not trainer.optimizer.state_dict()["state"] and trainer.progress.epoch == 5
    assert trainer.optimizer.param_groups[0]["lr"] == pytest.approx(0.05)  # this run's rate, warm-up over


def _error(path) -> str:
    with pytest.raises(CheckpointError) as info:
        resolve_checkpoint(str(path))
    assert isinstance(info.value, InputError) and str(path) in str(info.value)
    return str(info.value)


def test_a_model_state_of_no_layout_is_an_error_naming_what_was_expected(tmp_path):
    torch.save({"MODEL_STATE": {"encoder.w": torch.zeros(3)}, "EPOCHS_RUN": 0}, tmp_path / "x.pth")
    message = _error(tmp_path / "x.pth")
    assert "1 tensors under encoder" in message and "HaGRID v2's full-frame classifier" in message


def test_a_crop_layout_inside_model_state_is_an_error(tmp_path):
    crop = build_model("MobileNetV3_small", 19, image_size=32).state_dict()
    torch.save({"MODEL_STATE": crop, "EPOCHS_RUN": 0, "Metric": {"F1Score": 0.1}}, tmp_path / "x.pth")
    assert "HaGRID v1's hand-crop MobileNetV3_small layout" in _error(tmp_path / "x.pth")


@pytest.mark.parametrize("epochs_run", ["4", 4.0, -1, None])
def test_an_epochs_run_that_is_no_epoch_index_is_an_error(tmp_path, epochs_run):
    write_v2_snapshot(tmp_path / "x.pth", EPOCHS_RUN=epochs_run)
    assert "EPOCHS_RUN" in _error(tmp_path / "x.pth") and "an int of at least 0" in _error(tmp_path / "x.pth")


def test_a_class_count_of_no_v2_label_space_is_an_error_naming_the_counts(tmp_path):
    write_v2_snapshot(tmp_path / "x.pth", num_classes=7)
    assert "head has 7 classes" in (message := _error(tmp_path / "x.pth")) and "expected 34" in message


def test_the_module_tree_is_v2s(tmp_path):
    # Our model loads v2's single-GPU form strictly once its one ClassifierModel prefix is dropped.
    theirs = v2_model().state_dict()
    ours = build_model("MobileNetV3_small", 34, full_frame=True)
    assert isinstance(ours, FullFrameClassifier)
    ours.load_state_dict({k.removeprefix("hagrid_model."): v for k, v in theirs.items()})
