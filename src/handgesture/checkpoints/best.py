"""The experiment's best model: a stable pointer, `<storage>/<experiment>/best.json`.

It names the checkpoint URI, its sha256 (from the run manifest), the metric and the validation split it was
measured on; promotion (`handgesture.promotion`) moves it. `resume` follows it from the form
`<storage>/<experiment>/best` (so a run can never be named `best`). Writing the pointer is one atomic store
write (local: temp + fsync + rename; S3: one PUT), so readers see the old pointer or the new one.
"""

from __future__ import annotations

from typing import Any

from handgesture.checkpoints.format import read_record, write_record
from handgesture.checkpoints.run_folder import (
    experiment_uri,
    manifest_entry,
    read_manifest,
    split_checkpoint_uri,
)
from handgesture.errors import CheckpointError
from handgesture.storage import S3Settings, Store, open_store

POINTER = "best.json"
BEST_REF = "best"


def best_ref(storage_uri: str, experiment: str) -> str:
    """The resume form meaning "this experiment's current best": `<storage>/<experiment>/best`."""
    return f"{experiment_uri(storage_uri, experiment)}/{BEST_REF}"


def is_best_ref(uri: str) -> bool:
    return uri.rstrip("/").rpartition("/")[2] == BEST_REF


def read_pointer(store: Store) -> dict[str, Any] | None:
    """The experiment store's pointer as written, or None when no model was promoted yet."""
    return read_record(store, POINTER, "best pointer", "checkpoint", str)


def write_pointer(store: Store, pointer: dict[str, Any]) -> None:
    store.put_bytes(write_record(pointer), POINTER)


def read_best(store: Store, s3: S3Settings | None = None) -> dict[str, Any] | None:
    """The pointer, checked against the run manifest of the checkpoint it names; None before a promotion."""
    pointer = read_pointer(store)
    if pointer is None:
        return None
    inside = store.root.rstrip("/") + "/"
    if not pointer["checkpoint"].startswith(inside) or "/../" in pointer["checkpoint"]:
        raise CheckpointError(
            f"best pointer {store.uri(POINTER)} names {pointer['checkpoint']}, outside its experiment "
            f"{store.root}"
        )
    recorded = manifest_sha256(pointer["checkpoint"], s3)
    if pointer.get("sha256") and recorded and recorded != pointer["sha256"]:
        raise CheckpointError(
            f"best pointer {store.uri(POINTER)} names {pointer['checkpoint']} with sha256 "
            f"{pointer['sha256']}, but its run manifest now records {recorded}"
        )
    return pointer


def follow_best_ref(uri: str, s3: S3Settings | None = None) -> str:
    """`<storage>/<experiment>/best` -> the checkpoint URI its pointer names, checked against its manifest."""
    experiment = uri.rstrip("/").rpartition("/")[0]
    try:
        pointer = read_best(open_store(experiment, s3), s3)
    except CheckpointError as exc:
        raise CheckpointError(f"resume {uri}: {exc}") from None
    if pointer is None:
        raise CheckpointError(
            f"resume {uri}: no best model has been promoted in {experiment} yet (expected "
            f"{experiment}/{POINTER}; a scheduled retrain writes it)"
        )
    return pointer["checkpoint"]


def manifest_sha256(checkpoint_uri: str, s3: S3Settings | None = None) -> str | None:
    run, key = split_checkpoint_uri(checkpoint_uri)
    manifest = read_manifest(open_store(run, s3))
    entry = manifest_entry(manifest, key) if manifest else None
    return entry["sha256"] if entry else None
