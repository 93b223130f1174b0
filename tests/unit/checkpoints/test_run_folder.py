"""Run folders: atomic commits recorded in the manifest, and retention enforced in the store."""

import json

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
