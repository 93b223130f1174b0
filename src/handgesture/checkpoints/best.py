"""The experiment's best model: a stable pointer, `<storage>/<experiment>/best.json`.

It names the checkpoint URI, its sha256 (from the run manifest), the metric and the validation split it was
measured on; promotion (`handgesture.promotion`) moves it. `resume` follows it from the form
`<storage>/<experiment>/best` (so a run can never be named `best`). Writing the pointer is one atomic store
write (local: temp + fsync + rename; S3: one PUT), so readers see the old pointer or the new one, and it is
conditional on the pointer the writer decided against (`write_pointer_if`), so two promotions never both win.

A pointer is data from outside: the checkpoint it names must lie inside its experiment, and the sha256 it
records is required, matches the run manifest where there is one, and is checked against the file's bytes
before the file is used (`handgesture.checkpoints.locate`), so a file no manifest records is verified too.
"""

from __future__ import annotations

import json
import re
from typing import Any, NamedTuple

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
_SHA256 = re.compile(r"[0-9a-f]{64}")
Versioned = tuple[dict[str, Any] | None, str | None]  # a pointer and the store's version of its bytes


class BestRef(NamedTuple):
    """Where `<experiment>/best` leads: the checkpoint, the sha256 its bytes must have, and who says so."""

    checkpoint: str
    sha256: str
    pointer: str  # the pointer's URI


def best_ref(storage_uri: str, experiment: str) -> str:
    """The resume form meaning "this experiment's current best": `<storage>/<experiment>/best`."""
    return f"{experiment_uri(storage_uri, experiment)}/{BEST_REF}"


def is_best_ref(uri: str) -> bool:
    return uri.rstrip("/").rpartition("/")[2] == BEST_REF


def read_pointer(store: Store) -> dict[str, Any] | None:
    """The experiment store's pointer as written, or None when no model was promoted yet."""
    return read_record(store, POINTER, "best pointer", "checkpoint", str)


def read_best(store: Store, s3: S3Settings | None = None) -> dict[str, Any] | None:
    """The pointer, checked against the run manifest of the checkpoint it names; None before a promotion."""
    pointer = read_pointer(store)
    return None if pointer is None else _checked(store, pointer, s3)


def read_best_versioned(
    store: Store, s3: S3Settings | None = None
) -> tuple[dict[str, Any] | None, str | None]:
    """The pointer checked as `read_best` checks it, and the version a conditional write must find (None,
    None before a promotion)."""
    found = store.read_versioned(POINTER)
    if found is None:
        return None, None
    data, version = found
    uri = store.uri(POINTER)
    try:
        pointer = json.loads(data)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"best pointer {uri} is not valid JSON: {exc}") from None
    if not isinstance(pointer, dict) or not isinstance(pointer.get("checkpoint"), str):
        raise CheckpointError(f"best pointer {uri} has no 'checkpoint' str")
    return _checked(store, pointer, s3), version


def write_pointer_if(store: Store, pointer: dict[str, Any], version: str | None) -> bool:
    """Write the pointer only if it is still at `version` (None: only if there is none yet); False when
    another promotion moved it first (nothing written)."""
    data = write_record(pointer)
    if version is None:
        return store.create_exclusive(data, POINTER)
    return store.replace_if(data, POINTER, version)


def _checked(store: Store, pointer: dict[str, Any], s3: S3Settings | None) -> dict[str, Any]:
    uri, checkpoint = store.uri(POINTER), pointer["checkpoint"]
    inside = store.root.rstrip("/") + "/"
    if not checkpoint.startswith(inside) or "/../" in checkpoint:
        raise CheckpointError(f"best pointer {uri} names {checkpoint}, outside its experiment {store.root}")
    sha256 = pointer.get("sha256")
    if not isinstance(sha256, str) or not _SHA256.fullmatch(sha256):
        # Without it, nothing ties the pointer to the bytes that were promoted: a file that no manifest
        # records could be swapped or corrupted unnoticed.
        raise CheckpointError(
            f"best pointer {uri} names {checkpoint} with sha256 {sha256!r}: expected the 64 hex digits of "
            f"the promoted file's sha256 (promote the checkpoint again to rewrite the pointer)"
        )
    recorded = manifest_sha256(checkpoint, s3)
    if recorded and recorded != sha256:
        raise CheckpointError(
            f"best pointer {uri} names {checkpoint} with sha256 {sha256}, but its run manifest now records "
            f"{recorded}"
        )
    return pointer


def follow_best_ref(uri: str, s3: S3Settings | None = None) -> BestRef:
    """`<storage>/<experiment>/best` -> the checkpoint its pointer names, with the sha256 it must have."""
    experiment = uri.rstrip("/").rpartition("/")[0]
    store = open_store(experiment, s3)
    try:
        pointer = read_best(store, s3)
    except CheckpointError as exc:
        raise CheckpointError(f"resume {uri}: {exc}") from None
    if pointer is None:
        raise CheckpointError(
            f"resume {uri}: no best model has been promoted in {experiment} yet (expected "
            f"{experiment}/{POINTER}; a scheduled retrain writes it)"
        )
    return BestRef(pointer["checkpoint"], pointer["sha256"], store.uri(POINTER))


def manifest_sha256(checkpoint_uri: str, s3: S3Settings | None = None) -> str | None:
    run, key = split_checkpoint_uri(checkpoint_uri)
    manifest = read_manifest(open_store(run, s3))
    entry = manifest_entry(manifest, key) if manifest else None
    return entry["sha256"] if entry else None
