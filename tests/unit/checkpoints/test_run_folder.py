"""Run folders: atomic commits recorded in the manifest, and retention enforced in the store."""

import hashlib
import json
import re
from pathlib import Path

import pytest
import torch

from handgesture.checkpoints.format import to_bytes
from handgesture.checkpoints.run_folder import (
    Retention,
    RunFolder,
    RunFolderNotOpenError,
    manifest_entry,
    read_manifest,
)
from handgesture.storage import open_store


def fake_checkpoint(step: int, f1: float | None) -> dict:
    metrics = {} if f1 is None else {"gesture/f1_score": f1}
    progress = {"epoch": step // 10, "position": step % 10, "global_step": step}
    return {"state_dict": {"w": torch.tensor([float(step)])}, "progress": progress, "metrics": metrics}


def test_retention_keeps_last_n_best_k_and_the_protected_one(tmp_path):
    store = open_store(str(tmp_path / "run"))
    run = RunFolder(
        store, Retention(keep_last=2, keep_best=1, protected={"checkpoints/e0000-s00000001.pth"})
    ).open_for_writing()
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
    run = RunFolder(store).open_for_writing()
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


@pytest.mark.parametrize("remote", [False, True], ids=["local", "background-upload"])
def test_commit_writes_the_checkpoint_then_the_best_files_then_a_manifest_naming_only_written_objects(
    tmp_path, remote
):
    from tests.recording import RecordingStore

    store = RecordingStore(tmp_path / "run", remote=remote)
    run = RunFolder(
        store, Retention(keep_last=1, keep_best=1), spool_dir=tmp_path / "spool"
    ).open_for_writing()
    for step, f1 in ((10, 0.5), (20, 0.7), (30, 0.6)):
        run.commit(fake_checkpoint(step, f1), is_best=f1 == 0.7 or step == 10)
    run.close(timeout=60)
    puts = store.puts()
    first = puts.index("checkpoints/e0001-s00000010.pth")
    best_first = ["checkpoints/e0001-s00000010.pth", "best_model.pth", "best_weights.pth", "manifest.json"]
    assert puts[first : first + 4] == best_first
    for index, manifest in store.manifests:  # every manifest names only what was already in the store
        written = {key for what, key in store.events[:index] if what == "put"}
        deleted = {key for what, key in store.events[:index] if what == "delete"}
        named = {entry["key"] for entry in manifest["checkpoints"]}
        named |= {manifest["best"]["key"], manifest["best_weights"]["key"]}
        assert named <= written - deleted, (named, written, deleted)


def test_the_best_weights_file_holds_the_best_checkpoints_weights_alone_and_verifies(tmp_path):
    store = open_store(str(tmp_path / "run"))
    run = RunFolder(store, Retention(keep_last=1, keep_best=1)).open_for_writing()
    run.commit(fake_checkpoint(10, 0.5), is_best=True)
    run.commit(fake_checkpoint(20, 0.4), is_best=False)
    entry = run.manifest["best_weights"]
    assert entry["key"] == "best_weights.pth" and entry["source"] == "checkpoints/e0001-s00000010.pth"
    data = (tmp_path / "run" / "best_weights.pth").read_bytes()
    assert hashlib.sha256(data).hexdigest() == entry["sha256"] and len(data) == entry["size"]
    slim = torch.load(tmp_path / "run" / "best_weights.pth", weights_only=True)
    assert (
        slim["weights_only"] and "optimizer_state_dict" not in slim and slim["progress"]["global_step"] == 10
    )
    assert manifest_entry(read_manifest(store), "best_weights.pth") == entry  # what a resolve verifies by
    assert torch.equal(slim["state_dict"]["w"], fake_checkpoint(10, 0.5)["state_dict"]["w"])


class _NoIO:
    """A store that fails on anything but naming its root."""

    root = "file:///nowhere/run"

    def __getattr__(self, name):
        raise AssertionError(f"constructing a RunFolder called store.{name}")


def test_constructing_a_run_folder_calls_nothing_on_its_store():
    folder = RunFolder(_NoIO(), Retention(keep_last=1), owner="flow-run-x")
    assert folder.uri == "file:///nowhere/run" and folder.owner == "flow-run-x"
    folder.close(timeout=1)  # never opened: nothing to wait for or give back


@pytest.mark.parametrize(
    "write",
    [
        lambda run: run.commit(fake_checkpoint(10, 0.5), is_best=True),
        lambda run: run.write_manifest(run="x"),
        lambda run: run.write_text("config.yaml", "a: 1"),
        lambda run: run.put_file(Path(__file__), "notes.txt"),
        lambda run: run.tensorboard_dir(),
        lambda run: run.manifest,
    ],
    ids=["commit", "write_manifest", "write_text", "put_file", "tensorboard_dir", "manifest"],
)
def test_a_write_on_a_folder_that_was_not_opened_is_an_error_naming_it(tmp_path, write):
    store = open_store(str(tmp_path / "run"))
    run = RunFolder(store)
    with pytest.raises(RunFolderNotOpenError, match=re.escape(store.root)) as info:
        write(run)
    assert "call open_for_writing() first" in str(info.value)
    assert list(tmp_path.iterdir()) == []  # nothing written


def test_a_closed_folder_is_read_but_not_written_until_opened_again(tmp_path):
    run = RunFolder(open_store(str(tmp_path / "run"))).open_for_writing()
    with pytest.raises(RuntimeError, match="already open"):
        run.open_for_writing()
    run.commit(fake_checkpoint(10, 0.5), is_best=True)
    run.close(timeout=60)
    assert run.manifest["best"]["source"] == "checkpoints/e0001-s00000010.pth"  # what a summary reads
    with pytest.raises(RunFolderNotOpenError, match="not open for writing"):
        run.commit(fake_checkpoint(20, 0.6), is_best=True)
    run.open_for_writing().commit(fake_checkpoint(20, 0.6), is_best=True)
    run.close(timeout=60)
    assert [e["key"] for e in read_manifest(run.store)["checkpoints"]][
        -1
    ] == "checkpoints/e0002-s00000020.pth"


def test_a_remote_folder_s_local_event_files_go_once_uploaded_and_stay_while_an_upload_fails(tmp_path):
    from handgesture.errors import BucketNotFoundError
    from tests.recording import RecordingStore

    class FailingStore(RecordingStore):
        def put_file(self, local_path: Path, key: str) -> None:
            raise BucketNotFoundError("the bucket is gone")

    for store, uploaded in ((RecordingStore(tmp_path / "ok"), True), (FailingStore(tmp_path / "bad"), False)):
        run = RunFolder(store, spool_dir=tmp_path / f"spool-{uploaded}").open_for_writing()
        staging = run.tensorboard_dir()
        (staging / "events.out.tfevents.1").write_bytes(b"points")
        run.sync_tensorboard(staging)
        if uploaded:
            run.close(timeout=60)
            assert store.get_bytes("tensorboard/events.out.tfevents.1") == b"points"
        else:
            with pytest.raises(BucketNotFoundError, match="bucket is gone"):
                run.close(timeout=60)
        assert staging.exists() is not uploaded, staging
