import json
import pickle
import random
from pathlib import Path

import numpy as np
import pytest
import torch

from handgesture.checkpoints.locate import resolve_checkpoint
from handgesture.errors import CheckpointError
from handgesture.inference import load_model
from handgesture.training import run_training
from handgesture.training import state as ckpt


@pytest.fixture(scope="module")
def trained(tiny_dataset, tmp_path_factory):
    from handgesture.config import load_config

    runs = tmp_path_factory.mktemp("runs")
    config = load_config(
        "configs/demo.yaml",
        [
            f"dataset.annotations={tiny_dataset['annotations']}",
            f"dataset.dataset={tiny_dataset['dataset']}",
            f"dataset.cache_dir={runs / 'cache'}",
            f"storage.uri={runs}",
            "dataset.image_size=[32,32]",
            "model.name=ResNet18",
            "train_params.epochs=3",
            "train_params.train_batch_size=16",
            "train_params.num_workers=0",
            "checkpoint.keep_last=2",
            "checkpoint.keep_best=1",
        ],
    )
    return run_training(config, run_name="r")


def test_checkpoint_loads_with_weights_only_and_keeps_tutorial_keys(trained):
    checkpoint = torch.load(trained.last_checkpoint, weights_only=True)
    for key in ("state_dict", "optimizer_state_dict", "epoch", "config"):
        assert key in checkpoint
    assert checkpoint["epoch"] == 3
    assert checkpoint["model_name"] == "ResNet18"
    assert checkpoint["image_size"] == [32, 32]
    assert checkpoint["class_names"][-1] == "no_gesture"
    assert checkpoint["config"]["train_params"]["epochs"] == 3
    for key in ("scheduler_state_dict", "scaler_state_dict", "rng", "progress", "lineage", "schema_version"):
        assert key in checkpoint
    assert checkpoint["progress"]["global_step"] == trained.global_step


def test_run_folder_layout_and_manifest(trained):
    run = Path(trained.run_uri)
    assert (run / "best_model.pth").is_file()
    assert (run / "config.yaml").is_file()
    assert list((run / "tensorboard").iterdir())
    manifest = json.loads((run / "manifest.json").read_text())
    # Retention: the last 2 checkpoints and the best one are kept.
    assert len(manifest["checkpoints"]) <= 3
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == sorted(
        Path(e["key"]).name for e in manifest["checkpoints"]
    )
    for entry in manifest["checkpoints"]:
        data = (run / entry["key"]).read_bytes()
        assert entry["size"] == len(data)
        assert entry["sha256"] == __import__("hashlib").sha256(data).hexdigest()


def test_rng_round_trip_restores_every_stream():
    state = ckpt.capture_rng()
    expected = (random.random(), np.random.rand(), torch.rand(1))
    ckpt.restore_rng(state)
    assert random.random() == expected[0], "python stream"
    assert np.random.rand() == expected[1], "numpy stream"
    assert torch.equal(torch.rand(1), expected[2]), "torch stream"


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device (the GPU check runs it)")
def test_rng_round_trip_restores_the_cuda_stream():
    state = ckpt.capture_rng()
    expected = torch.rand(4, device="cuda")
    ckpt.restore_rng(state)
    assert torch.equal(torch.rand(4, device="cuda"), expected), "cuda stream"


def test_a_restore_brings_back_optimizer_scheduler_and_scaler_state():
    from handgesture.config import load_config
    from handgesture.training.setup import build_trainer

    config = load_config(None, ["model.name=MobileNetV3_small", "dataset.image_size=[32,32]"])
    source = build_trainer(config, torch.device("cpu"), steps_per_epoch=5)
    source.scaler = torch.amp.GradScaler("cpu", init_scale=1234.0)  # enabled, so it has state to lose
    outputs = source.model(torch.rand(4, 3, 32, 32))
    (outputs["gesture"].sum() + outputs["leading_hand"].sum()).backward()
    source.optimizer.step()  # momentum buffers
    for _ in range(3):
        source.scheduler.step()
    source.progress.global_step = 3
    checkpoint = ckpt.TrainingState(source, config, 5).dump({})
    target = build_trainer(config, torch.device("cpu"), steps_per_epoch=5)
    target.scaler = torch.amp.GradScaler("cpu", init_scale=1.0)
    ckpt.TrainingState(target, config, 5).restore(checkpoint, "test")
    assert target.optimizer.state_dict()["state"], "optimizer state (momentum) restored"
    restored, saved = target.optimizer.state_dict()["state"], source.optimizer.state_dict()["state"]
    assert all(torch.equal(restored[i]["momentum_buffer"], saved[i]["momentum_buffer"]) for i in saved)
    assert target.scheduler.state_dict() == source.scheduler.state_dict(), "scheduler state restored"
    assert target.optimizer.param_groups[0]["lr"] == source.optimizer.param_groups[0]["lr"]
    assert target.scaler.get_scale() == 1234.0, "grad scaler state restored"


def test_newest_torn_checkpoint_is_skipped_for_the_last_complete_one(trained, tmp_path):
    import shutil

    run = tmp_path / "copy"
    shutil.copytree(trained.run_uri, run)
    manifest = json.loads((run / "manifest.json").read_text())
    newest, previous = manifest["checkpoints"][-1], manifest["checkpoints"][-2]
    (run / newest["key"]).write_bytes((run / newest["key"]).read_bytes()[:1000])  # torn
    resolved = resolve_checkpoint(str(run))
    assert resolved.uri.endswith(previous["key"])


def test_named_checkpoint_with_flipped_byte_is_an_error(trained, tmp_path):
    import shutil

    run = tmp_path / "copy"
    shutil.copytree(trained.run_uri, run)
    key = json.loads((run / "manifest.json").read_text())["checkpoints"][-1]["key"]
    data = bytearray((run / key).read_bytes())
    data[len(data) // 2] ^= 0xFF
    (run / key).write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="failed verification"):
        resolve_checkpoint(str(run / key))


def test_file_that_is_not_a_checkpoint(tmp_path):
    path = tmp_path / "weights.pth"
    torch.save({"weights": torch.zeros(2)}, path)
    with pytest.raises(CheckpointError, match="not a training checkpoint"):
        resolve_checkpoint(str(path))
    path.write_text("hello")
    with pytest.raises(CheckpointError, match="not a readable checkpoint"):
        resolve_checkpoint(str(path))


class _Exploit:
    def __reduce__(self):
        return (Path.touch, (Path(_Exploit.marker),))


def test_pickle_that_runs_code_is_refused_and_never_runs(tmp_path):
    _Exploit.marker = str(tmp_path / "pwned")
    path = tmp_path / "evil.pth"
    torch.save({"state_dict": {}, "payload": _Exploit()}, path, pickle_protocol=pickle.HIGHEST_PROTOCOL)
    with pytest.raises(CheckpointError, match="refused by the safe loader"):
        resolve_checkpoint(str(path))
    assert not (tmp_path / "pwned").exists()


def test_notebook_helper_loads_a_ready_model(trained):
    loaded = load_model(trained.best_checkpoint)
    assert loaded.model_name == "ResNet18"
    assert not loaded.model.training
    with torch.no_grad():
        out = loaded.model(torch.zeros(1, 3, *loaded.image_size))
    assert out["gesture"].shape == (1, len(loaded.class_names))
    # A run folder resolves to its newest checkpoint; a file:// URI works too.
    assert load_model(trained.run_uri).epoch == 3
    assert load_model("file://" + trained.best_checkpoint).uri == trained.best_checkpoint


def test_tutorial_snippet_works_on_our_files(trained):
    from handgesture.models import build_model

    model = build_model("ResNet18", num_classes=19)
    state = torch.load(trained.best_checkpoint, map_location=torch.device("cpu"))["state_dict"]
    model.load_state_dict(state, strict=False)
