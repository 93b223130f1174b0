"""HaGRID's and the tutorial's checkpoints are ours to load, inspect, continue and fine-tune."""

import json

import pytest
import torch
from handgesture_cli.main import main

from handgesture.checkpoints.locate import resolve_checkpoint
from handgesture.config import load_config
from handgesture.errors import CheckpointError, InputError
from handgesture.inference import load_model
from handgesture.labels import HAGRID_TARGETS
from handgesture.report import render_report
from handgesture.training import run_training
from handgesture.training.setup import build_trainer
from handgesture.training.state import TrainingState
from tests.hagrid import hagrid_config, write_hagrid_checkpoint

SMALL = hagrid_config(**{"dataset.image_size": [32, 32]})  # HaGRID's config, at the tests' crop size


def test_a_hagrid_checkpoint_loads_by_its_weights_and_gives_the_same_outputs(tmp_path):
    path = tmp_path / "best_model.pth"
    theirs = write_hagrid_checkpoint(path, "MobileNetV3_small", epoch=4, config=hagrid_config())
    loaded = load_model(str(path))
    assert (loaded.model_name, loaded.class_names, loaded.epoch) == ("MobileNetV3_small", HAGRID_TARGETS, 5)
    images = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(loaded.model(images), theirs(images), rtol=0, atol=0)


def test_the_architecture_comes_from_the_weights_not_the_tutorials_model_name(tmp_path):
    # The tutorial sets experiment_name to the chosen model and leaves model.name at the file's default.
    config = hagrid_config(**{"experiment_name": "ResNet18", "model.name": "MobileNetV3_small"})
    write_hagrid_checkpoint(tmp_path / "best_model.pth", "ResNet18", epoch=0, config=config)
    assert resolve_checkpoint(str(tmp_path / "best_model.pth")).checkpoint["model_name"] == "ResNet18"


def test_inspect_reports_what_a_hagrid_checkpoint_holds(tmp_path, capsys):
    write_hagrid_checkpoint(tmp_path / "m.pth", "ResNet18", epoch=2, config=hagrid_config())
    assert main(["inspect", str(tmp_path / "m.pth")]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["model_name"] == "ResNet18" and info["epoch"] == 3 and info["origin"] == "hagrid"


def test_an_unknown_layout_is_one_input_error_naming_file_found_and_expected(tmp_path):
    path = tmp_path / "other.pth"
    torch.save({"state_dict": {"encoder.w": torch.zeros(3)}, "epoch": 0}, path)
    with pytest.raises(CheckpointError) as info:
        resolve_checkpoint(str(path))
    message = str(info.value)
    assert (
        str(path) in message and "1 tensors under encoder" in message and "ResNet18: backbone.0-7" in message
    )
    assert isinstance(info.value, InputError) and len(message) < 600  # not torch's 12,000-character error


@pytest.mark.parametrize("version", [1, 3])  # ours from before HaGRID's layout; a newer release's
def test_another_schema_version_is_one_error_naming_the_file_and_the_expected_version(
    tmp_path, capsys, version
):
    path = tmp_path / "old.pth"
    torch.save({"schema_version": version, "state_dict": {}, "model_name": "ResNet18"}, path)
    assert main(["inspect", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {path} has checkpoint schema version {version}: expected version 2")
    assert err.count("\n") == 1


def test_restoring_a_hagrid_checkpoint_starts_the_next_epoch_and_replays_the_schedule(tmp_path):
    path = tmp_path / "best_model.pth"
    write_hagrid_checkpoint(path, "MobileNetV3_small", epoch=0, config=SMALL)
    settings = ["model.name=MobileNetV3_small", "dataset.image_size=[32,32]", "optimizer.lr=0.1"]
    config = load_config(None, [*settings, "scheduler.warmup_steps=20"])
    steps_per_epoch = 7
    trainer = build_trainer(config, torch.device("cpu"), steps_per_epoch)
    reference = build_trainer(config, torch.device("cpu"), steps_per_epoch)
    checkpoint = resolve_checkpoint(str(path)).checkpoint
    TrainingState(trainer, config, steps_per_epoch).restore(checkpoint, str(path))
    assert (trainer.progress.epoch, trainer.progress.global_step) == (1, steps_per_epoch)
    for _ in range(steps_per_epoch):  # where our own schedule is after one epoch
        reference.optimizer.step()
        reference.scheduler.step()
    assert trainer.optimizer.param_groups[0]["lr"] == pytest.approx(reference.optimizer.param_groups[0]["lr"])
    assert trainer.optimizer.param_groups[0]["lr"] < config.optimizer.lr  # still warming up, never multiplied
    assert trainer.optimizer.state_dict()["state"]  # HaGRID's momentum buffers came along


@pytest.mark.slow
def test_continuing_a_hagrid_run_trains_only_the_epochs_it_has_not(tiny_config, tmp_path):
    path = tmp_path / "best_model.pth"
    write_hagrid_checkpoint(path, "MobileNetV3_small", epoch=0, config=SMALL)
    summary = run_training(tiny_config("train_params.epochs=2"), resume=str(path), run_name="continued")
    assert summary.epochs == 2 and [row["epoch"] for row in summary.history] == [2]
    assert summary.resumed_from == str(path)
    last = torch.load(summary.last_checkpoint, weights_only=True)
    assert last["optimizer_state_dict"]["param_groups"][0]["lr"] == pytest.approx(
        0.02
    )  # demo lr, warm-up over


@pytest.mark.slow
def test_fine_tuning_keeps_every_tensor_that_fits_and_reports_the_heads(tiny_config, tmp_path):
    path = tmp_path / "best_model.pth"
    write_hagrid_checkpoint(path, "MobileNetV3_small", epoch=3, config=hagrid_config())
    targets = "dataset.targets=[call,dislike,fist,four,like,no_gesture]"
    tuned = run_training(
        tiny_config(targets, "checkpoint.resume_mode=finetune", "train_params.epochs=1"),
        resume=str(path),
        run_name="tuned",
    )
    assert tuned.finetune_skipped == ["gesture_classifier.3.bias", "gesture_classifier.3.weight"]
    report = render_report(tuned, "MobileNetV3_small")
    assert "re-initialised: `gesture_classifier.3.bias`, `gesture_classifier.3.weight`" in report


def test_fine_tuning_from_another_architecture_is_an_error_naming_the_tensors(tiny_config, tmp_path):
    path = tmp_path / "resnet.pth"
    write_hagrid_checkpoint(path, "ResNet18", epoch=0, config=hagrid_config())
    with pytest.raises(
        CheckpointError, match=r"re-initialise \d+ of \d+ tensors beyond the heads \(e.g. backbone"
    ):
        run_training(tiny_config("checkpoint.resume_mode=finetune"), resume=str(path), run_name="x")
    assert not (tmp_path / "runs" / "demo" / "x" / "manifest.json").exists()


@pytest.mark.slow
def test_fine_tuning_from_another_architecture_when_asked_for(tiny_config, tmp_path):
    path = tmp_path / "resnet.pth"
    write_hagrid_checkpoint(path, "ResNet18", epoch=0, config=hagrid_config())
    config = tiny_config("checkpoint.resume_mode=finetune", "checkpoint.allow_backbone_reinit=true",
                         "train_params.epochs=1")  # fmt: skip
    summary = run_training(config, resume=str(path), run_name="anyway")
    assert len(summary.finetune_skipped) > 100  # everything: nothing of a ResNet fits a MobileNet
