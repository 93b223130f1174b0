"""Run folders: atomic commits recorded in the manifest, and retention enforced in the store."""

import json
from pathlib import Path

import torch

from handgesture.checkpoints.format import to_bytes
from handgesture.checkpoints.run_folder import Retention, RunFolder
from handgesture.storage import open_store


def fake_checkpoint(step: int, f1: float | None) -> dict:
    metrics = {} if f1 is None else {"gesture/f1_score": f1}
    progress = {"epoch": step // 10, "position": step % 10, "global_step": step}
    return {"state_dict": {"w": torch.tensor([float(step)])}, "progress": progress, "metrics": metrics}


def test_retention_keeps_last_n_best_k_and_the_protected_one(tmp_path):
    store = open_store(str(tmp_path / "run"))
    run = RunFolder(store, Retention(keep_last=2, keep_best=1, protected={"checkpoints/e0000-s00000001.pth"}))
    scores = {1: None, 10: 0.5, 15: None, 20: 0.9, 25: None, 30: 0.7, 35: None}
    for step, f1 in scores.items():
        run.commit(fake_checkpoint(step, f1), is_best=False)
    kept = sorted(store.list("checkpoints"))
    assert kept == [
        "checkpoints/e0000-s00000001.pth",  # protected: the checkpoint this run resumed from
        "checkpoints/e0002-s00000020.pth",  # best by validation gesture F1
        "checkpoints/e0003-s00000030.pth",  # last two
        "checkpoints/e0003-s00000035.pth",
    ]
    manifest = json.loads(store.get_bytes("manifest.json"))
    assert sorted(e["key"] for e in manifest["checkpoints"]) == kept


def test_manifest_records_sha256_and_size_and_best_pointer(tmp_path):
    import hashlib

    store = open_store(str(tmp_path / "run"))
    run = RunFolder(store)
    checkpoint = fake_checkpoint(10, 0.8)
    entry = run.commit(checkpoint, is_best=True)
    data = to_bytes(checkpoint)
    assert entry["size"] == len(data) == len(store.get_bytes(entry["key"]))
    assert entry["sha256"] == hashlib.sha256(store.get_bytes(entry["key"])).hexdigest()
    manifest = json.loads(store.get_bytes("manifest.json"))
    assert manifest["best"]["source"] == entry["key"]
    assert store.get_bytes("best_model.pth") == store.get_bytes(entry["key"])
    assert not [p for p in (tmp_path / "run").rglob("*.partial")]


def test_an_epochs_event_files_reach_the_store_before_its_manifest(tiny_config, tmp_path, monkeypatch):
    """Once a remote manifest names an epoch's checkpoint, that epoch's TensorBoard points are there too."""
    from handgesture.training import run as run_module
    from handgesture.training import run_training
    from tests.recording import RecordingStore

    stores: list[RecordingStore] = []

    def recording(uri, s3=None):
        stores.append(RecordingStore(Path(uri)))
        return stores[-1]

    monkeypatch.setattr(run_module, "open_store", recording)
    run_training(tiny_config("train_params.epochs=2"), run_name="order")
    puts = stores[0].puts()
    for epoch in (1, 2):
        checkpoint = next(i for i, key in enumerate(puts) if key.startswith(f"checkpoints/e{epoch:04d}-"))
        manifest = next(i for i, key in enumerate(puts) if key == "manifest.json" and i > checkpoint)
        events = [i for i, key in enumerate(puts) if key.startswith("tensorboard/") and i < manifest]
        assert events and max(events) < checkpoint, puts  # the epoch's event files, then its commit
