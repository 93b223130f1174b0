"""One resume path: a URI goes in, a verified checkpoint in the current schema comes out.

Accepted URIs: a checkpoint file (local path, `file://`, `s3://`); a run folder / prefix, which resolves
to its newest committed checkpoint that verifies against the run manifest; `prefect://flow-runs/<id>`
(that flow run's last checkpoint, or its best with `/best`); `<storage>/<experiment>/best` (the experiment's
current best, followed through its `best.json` pointer).
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import urlparse

from handgesture.checkpoints.best import BestRef, follow_best_ref, is_best_ref
from handgesture.checkpoints.foreign import upgrade
from handgesture.checkpoints.format import from_bytes
from handgesture.checkpoints.prefect_refs import PREFIX, is_flow_run_ref, resolve_flow_run_ref
from handgesture.checkpoints.run_folder import (
    CHECKPOINTS,
    manifest_entry,
    read_manifest,
    split_checkpoint_uri,
)
from handgesture.errors import CheckpointError, ChecksumMismatchError, InputError, UnsupportedSchemeError
from handgesture.storage import S3Settings, Store, cached_download, is_local, open_store

log = logging.getLogger(__name__)
CHECKPOINT_SUFFIXES = (".pth", ".pt")
RESUME_FORMS = (
    "a local path, file://..., s3://bucket/..., <storage>/<experiment>/best, or " + PREFIX + "<id>[/best]"
)


class Pin(NamedTuple):
    """The sha256 a checkpoint file must have, whatever its manifest says, and who recorded it."""

    sha256: str
    by: str


@dataclass
class Resolved:
    uri: str
    checkpoint: dict[str, Any]
    sha256: str  # of the file as stored: what an exported model names as its source


def default_cache_dir() -> Path:
    return Path(os.environ.get("HANDGESTURE_CACHE", Path(tempfile.gettempdir()) / "handgesture-cache"))


def resolve_checkpoint(
    uri: str,
    s3: S3Settings | None = None,
    cache_dir: Path | None = None,
    *,
    sha256: str | None = None,
    pinned_by: str = "the caller",
) -> Resolved:
    """Load the checkpoint `uri` names, verified against its run's manifest when there is one.

    `sha256`: the bytes the checkpoint file `uri` must have, as `pinned_by` recorded them (a start point
    resolved earlier in the run), whatever its manifest says now."""
    cache_dir = cache_dir or default_cache_dir()
    scheme = urlparse(uri).scheme.lower()
    if scheme not in ("file", "s3", "prefect") and not is_local(uri):
        # Checked here, so the message names the whole URI and every form resume accepts.
        raise UnsupportedSchemeError(
            f"unsupported resume URI {uri!r}: scheme '{scheme}://' is not supported; expected a checkpoint "
            f"or run folder as {RESUME_FORMS}"
        )
    if is_flow_run_ref(uri):
        uri = resolve_flow_run_ref(uri)
    elif is_best_ref(uri):
        return _load_best(follow_best_ref(uri, s3), uri, s3, cache_dir)
    pin = Pin(sha256, pinned_by) if sha256 else None
    if uri.rstrip("/").endswith(CHECKPOINT_SUFFIXES):
        run_uri, key = split_checkpoint_uri(uri)
        return _load_named(open_store(run_uri, s3), key, cache_dir, pin)
    if pin:
        raise CheckpointError(f"{pinned_by}: {uri} is not a checkpoint file, so no sha256 can pin it")
    return _load_newest(open_store(uri, s3), cache_dir)


def _load_best(best: BestRef, ref: str, s3: S3Settings | None, cache_dir: Path) -> Resolved:
    """The checkpoint `<experiment>/best` names, verified against the sha256 its pointer records."""
    if not best.checkpoint.rstrip("/").endswith(CHECKPOINT_SUFFIXES):
        raise CheckpointError(
            f"resume {ref}: best pointer {best.pointer} names {best.checkpoint}, not a checkpoint file "
            f"(expected a .pth file, whose sha256 it records)"
        )
    run_uri, key = split_checkpoint_uri(best.checkpoint)
    pin = Pin(best.sha256, f"best pointer {best.pointer}")
    return _load_named(open_store(run_uri, s3), key, cache_dir, pin)


def _load_named(store: Store, key: str, cache_dir: Path, pinned: Pin | None = None) -> Resolved:
    """`pinned`: the sha256 the file must have, manifest or none, and who recorded it."""
    uri = store.uri(key)
    if not store.exists(key):
        raise CheckpointError(f"resume checkpoint {uri} does not exist (expected a .pth checkpoint file)")
    manifest = read_manifest(store)
    # No manifest: a bare file (e.g. the tutorial's best_model.pth); torch.load still checks its structure.
    entry = manifest_entry(manifest, key) if manifest else None
    recorded = entry["sha256"] if entry else None
    if pinned and recorded and recorded != pinned.sha256:  # the run went on and replaced the promoted file
        raise CheckpointError(
            f"resume checkpoint {uri}: {pinned.by} records sha256 {pinned.sha256}, but its "
            f"run manifest now records {recorded}: it is not the file that was chosen"
        )
    expected = pinned.sha256 if pinned else recorded
    try:
        path = cached_download(store, key, cache_dir, sha256=expected)
    except ChecksumMismatchError as exc:
        by = pinned.by if pinned else "its run manifest"
        raise CheckpointError(f"resume checkpoint {uri} failed verification against {by}: {exc}") from None
    data = path.read_bytes()
    return Resolved(uri, upgrade(from_bytes(data, uri), uri), hashlib.sha256(data).hexdigest())


def _load_newest(store: Store, cache_dir: Path) -> Resolved:
    manifest = read_manifest(store)
    if manifest is None or not manifest["checkpoints"]:
        what = "has no committed checkpoints" if store.list() else "does not exist or is empty"
        raise CheckpointError(
            f"resume run {store.root} {what} (expected a run folder with {CHECKPOINTS}/ and manifest.json, "
            f"or a .pth checkpoint file)"
        )
    for entry in reversed(manifest["checkpoints"]):
        try:
            return _load_named(store, entry["key"], cache_dir)
        except InputError as exc:  # torn, flipped or gone; an outage is not skipped past
            log.warning("skipping checkpoint that does not verify: %s", exc)
    raise CheckpointError(f"resume run {store.root}: no committed checkpoint verifies (see warnings above)")
