"""Our full-frame checkpoints are HaGRID v2's to load: they also carry v2's snapshot keys (issue 23)."""

import pytest
import torch
from torch import nn

from handgesture.checkpoints.format import from_bytes, to_bytes
from handgesture.checkpoints.hagrid_v2 import SNAPSHOT_KEYS
from handgesture.checkpoints.locate import resolve_checkpoint
from handgesture.checkpoints.weights import slim_weights
from handgesture.training.setup import build_trainer
from handgesture.training.state import TrainingState
from tests.hagrid_v2 import v2_load_snapshot, v2_normalise
from tests.unit.checkpoints.test_hagrid_v2_snapshots import STEPS_PER_EPOCH, restored, v2_config

OURS_ONLY = ("schema_version", "state_dict", "optimizer_state_dict", "plateau_state_dict", "progress")


def trained_state(config=None, epochs: int = 3) -> TrainingState:
    """A full-frame trainer after a few steps and `epochs` plateau steps, its counters at `epochs`."""
    config = config or v2_config()
    torch.manual_seed(2)
    trainer = build_trainer(config, torch.device("cpu"), STEPS_PER_EPOCH)
    for _ in range(STEPS_PER_EPOCH):
        logits = trainer.model(torch.rand(4, 3, 32, 32))["gesture"]
        loss = nn.functional.cross_entropy(logits, torch.randint(0, 34, (4,)))
        trainer.optimizer.zero_grad()
        loss.backward()
        trainer.optimizer.step()
        trainer.scheduler.step()
    for epoch_loss in (1.0, 1.0, 1.0)[:epochs]:
        trainer.plateau.step(epoch_loss)
    progress = trainer.progress
    progress.epoch, progress.global_step, progress.best_metric, progress.best_epoch = epochs, 9, 0.4, 2
    progress.history = [{"epoch": 2, "train/loss": 0.9}, {"epoch": 3, "train/loss": 0.8}]
    return TrainingState(trainer, config, STEPS_PER_EPOCH)


def test_v2s_own_loading_code_loads_our_checkpoint_and_gives_the_same_logits(tmp_path):
    state = trained_state()
    path = tmp_path / "ours.pth"
    path.write_bytes(to_bytes(state.dump({})))
    theirs = v2_load_snapshot(path)
    assert theirs["epochs_run"] == 2  # our 3 finished epochs: v2 would go on at range(2, epochs)
    assert theirs["best"] == (2, 0.9, {"F1Score": 0.4})  # the best epoch's loss and metric
    ours = state.trainer.optimizer
    assert theirs["optimizer"].param_groups[0]["lr"] == ours.param_groups[0]["lr"]
    assert theirs["scheduler"].state_dict()["last_epoch"] == state.trainer.plateau.last_epoch == 3
    images = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        expected = state.trainer.model.eval()(images)["gesture"]
        torch.testing.assert_close(theirs["model"](v2_normalise(images)), expected)


def test_the_v2_keys_reuse_our_tensors_so_the_file_barely_grows(tmp_path):
    checkpoint = trained_state().dump({})
    assert set(SNAPSHOT_KEYS) <= checkpoint.keys()
    assert checkpoint["OPTIMIZER_STATE"] is checkpoint["optimizer_state_dict"]
    for key, tensor in checkpoint["state_dict"].items():
        assert checkpoint["MODEL_STATE"]["hagrid_model." + key] is tensor
    without = {k: v for k, v in checkpoint.items() if k not in SNAPSHOT_KEYS}
    assert len(to_bytes(checkpoint)) < 1.03 * len(to_bytes(without))


def test_best_weights_carry_model_state_and_crop_checkpoints_carry_no_v2_keys():
    slim = slim_weights(trained_state().dump({}))
    assert set(slim["MODEL_STATE"]) == {"hagrid_model." + key for key in slim["state_dict"]}
    crop = v2_config("model.full_frame=false", "dataset.image_size=[32,32]")
    trainer = build_trainer(crop, torch.device("cpu"), STEPS_PER_EPOCH)
    assert not set(SNAPSHOT_KEYS) & TrainingState(trainer, crop, STEPS_PER_EPOCH).dump({}).keys()


def test_ours_read_as_a_v2_snapshot_continues_where_it_stood(tmp_path):
    state = trained_state()
    checkpoint = state.dump({})
    v2_only = {key: checkpoint[key] for key in SNAPSHOT_KEYS}
    (tmp_path / "v2.pth").write_bytes(to_bytes(v2_only))
    from_bytes((tmp_path / "v2.pth").read_bytes(), "v2.pth")  # our safe loader takes it
    trainer = restored(tmp_path / "v2.pth")
    assert trainer.progress.epoch == 3 and trainer.progress.best_metric == pytest.approx(0.4)
    for key, tensor in state.trainer.model.state_dict().items():
        assert torch.equal(trainer.model.state_dict()[key], tensor)
    assert trainer.optimizer.param_groups[0]["lr"] == state.trainer.optimizer.param_groups[0]["lr"]
    assert resolve_checkpoint(str(tmp_path / "v2.pth")).checkpoint["origin"] == "hagrid_v2"
