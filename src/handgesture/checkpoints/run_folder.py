"""A run folder in a store: checkpoints committed atomically, recorded in a manifest written last.

Layout of `<storage>/<experiment>/<run>/`:
    checkpoints/e0003-s00000120.pth   every committed checkpoint (retention keeps last N and best K)
    best_model.pth                    the best checkpoint so far (the tutorial's file name)
    best_weights.pth                  its weights alone (weights.py), for consumers of the model
    manifest.json                     sha256, size, epoch, step and metrics of each checkpoint; written last
    config.yaml                       the resolved config
    tensorboard/                      event files
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from handgesture.checkpoints.format import read_record, to_bytes, write_record
from handgesture.checkpoints.lease import RunLease
from handgesture.checkpoints.uploader import BackgroundUploader, recover_spool
from handgesture.checkpoints.weights import BEST_WEIGHTS, slim_weights
from handgesture.errors import InvalidStorageURIError
from handgesture.metrics import BEST_METRIC, scalars
from handgesture.storage import Store, root_uri
from handgesture.storage.base import PARTIAL

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"
BEST = "best_model.pth"
CHECKPOINTS = "checkpoints"
TENSORBOARD = "tensorboard"
MANIFEST_VERSION = 1


@dataclass
class Retention:
    keep_last: int = 2
    keep_best: int = 1
    protected: set[str] = field(default_factory=set)  # keys never deleted (the checkpoint a run resumed from)


class RunFolderNotOpenError(RuntimeError):
    """A write on a run folder that was not opened for writing (or was closed since)."""


class RunFolder:
    """Commits checkpoints into one run's folder of a store and keeps its manifest.

    Constructing one only records where and how it will write: nothing is read, written or started.
    `open_for_writing()` is the step that makes it a writer: with an `owner`, the folder is leased to it first
    (lease.py: a second writer fails at once; a heartbeat thread renews the lease), and what a stopped writer
    left behind is finished or removed: spooled uploads go up in order, temp files go, and checkpoints the
    manifest does not name (deletions a crash cut short) are deleted. Then the manifest is read and, for a
    remote store, the background uploader starts. `close()` is the matching end: with a remote store it waits
    until every upload is confirmed, then gives the lease back. Reading a run folder needs no opening:
    `read_manifest(store)`.
    """

    def __init__(
        self,
        store: Store,
        retention: Retention | None = None,
        spool_dir: Path | None = None,
        owner: str | None = None,
    ):
        self.store = store
        root_digest = hashlib.sha256(store.root.encode()).hexdigest()[:16]
        self.spool_dir = spool_dir or Path(tempfile.gettempdir()) / "handgesture-spool" / root_digest
        self.retention = retention or Retention()
        self.owner = owner
        self.lease: RunLease | None = None
        self.uploader: BackgroundUploader | None = None
        self._manifest: dict[str, Any] | None = None
        self._open = False
        self._tensorboard_staging: Path | None = None  # a remote folder's local event files, until closed

    def open_for_writing(self) -> RunFolder:
        """Lease the folder (with an owner), finish what a stopped writer left, read the manifest and start
        the uploader (remote stores); returns this folder. Pair it with `close()`."""
        if self._open:
            raise RuntimeError(f"run folder {self.uri} is already open for writing")
        # Remote stores upload in the background from a local spool, in commit order (see uploader.py).
        remote = self.store.local_path(MANIFEST) is None
        self.lease = RunLease(self.store, self.owner) if self.owner else None
        if self.lease:
            self.lease.acquire()
        try:
            if self.lease:
                self._finish_what_was_left(remote)
            manifest = read_manifest(self.store)
            self._manifest = manifest or {"version": MANIFEST_VERSION, "checkpoints": [], "best": None}
            if self.lease:
                self._delete_orphans()
        except BaseException:
            if self.lease:
                self.lease.release()
            raise
        self.uploader = BackgroundUploader(self.store, self.spool_dir) if remote else None
        self._open = True
        return self

    @property
    def manifest(self) -> dict[str, Any]:
        """The manifest as this writer keeps it (read by `open_for_writing()`)."""
        if self._manifest is None:
            raise RunFolderNotOpenError(
                f"run folder {self.uri} was never opened, so its manifest was not read: call "
                "open_for_writing() first, or read_manifest(store) to read it without writing"
            )
        return self._manifest

    def _check_open(self) -> None:
        if not self._open:
            raise RunFolderNotOpenError(
                f"run folder {self.uri} is not open for writing: call open_for_writing() first"
            )

    def _finish_what_was_left(self, remote: bool) -> None:
        if remote:
            recover_spool(self.store, self.spool_dir)
            return
        for dirpath, _dirs, files in os.walk(self.store.root):
            for name in files:
                if name.endswith(PARTIAL):  # a write that kill -9 cut short
                    Path(dirpath, name).unlink(missing_ok=True)

    def _delete_orphans(self) -> None:
        named = {entry["key"] for entry in self.manifest["checkpoints"]} | self.retention.protected
        for key in self.store.list(f"{CHECKPOINTS}/"):
            if key not in named:
                log.info("deleting %s: no manifest entry names it (a deletion a crash cut short)", key)
                self.store.delete(key)

    @property
    def uri(self) -> str:
        return self.store.root

    def commit(self, checkpoint: dict[str, Any], *, is_best: bool) -> dict[str, Any]:
        """Write the checkpoint (and best_model.pth and best_weights.pth), then the manifest: visible only
        once complete."""
        self._check_open()
        if self.lease:
            self.lease.check()
        data = to_bytes(checkpoint)
        progress = checkpoint["progress"]
        key = f"{CHECKPOINTS}/e{progress['epoch']:04d}-s{progress['global_step']:08d}.pth"
        entry = {
            "key": key,
            "uri": self.store.uri(key),
            "sha256": hashlib.sha256(data).hexdigest(),
            "size": len(data),
            "epoch": progress["epoch"],
            "position": progress["position"],
            "global_step": progress["global_step"],
            "metrics": scalars(checkpoint.get("metrics", {})),
            "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        self._put(data, [key, BEST] if is_best else [key])
        if is_best:
            self.manifest["best"] = {**entry, "key": BEST, "uri": self.store.uri(BEST), "source": key}
            self.manifest["best_weights"] = self._put_best_weights(checkpoint, entry)
        self.manifest["checkpoints"] = [e for e in self.manifest["checkpoints"] if e["key"] != key] + [entry]
        doomed = self._apply_retention()
        self.write_manifest()
        # Files go only after the manifest stops naming them, so it never points at a deleted checkpoint.
        for stale in doomed:
            self._delete(stale)
        return entry

    def _put_best_weights(self, checkpoint: dict[str, Any], entry: dict[str, Any]) -> dict[str, Any]:
        data = to_bytes(slim_weights(checkpoint))
        self._put(data, [BEST_WEIGHTS])
        return {
            **entry,
            "key": BEST_WEIGHTS,
            "uri": self.store.uri(BEST_WEIGHTS),
            "sha256": hashlib.sha256(data).hexdigest(),
            "size": len(data),
            "source": entry["key"],
        }

    def _put(self, data: bytes, keys: list[str]) -> None:
        if self.uploader is None:
            for key in keys:
                self.store.put_bytes(data, key)
        else:
            self.uploader.put_bytes(data, keys)

    def _delete(self, key: str) -> None:
        if self.uploader is None:
            self.store.delete(key)
        else:
            self.uploader.delete(key)

    def put_file(self, local_path: Path, key: str) -> None:
        self._check_open()
        if self.uploader is None:
            self.store.put_file(local_path, key)
        else:
            self.uploader.put_file(local_path, key)

    def close(self, timeout: float) -> None:
        """Wait for queued uploads (remote stores); fails naming the local copies kept if they cannot go.
        The lease is given back either way. A folder that is not open has nothing to wait for or give back."""
        if not self._open:
            return
        self._open = False
        try:
            if self.uploader is not None:
                self.uploader.close(timeout)
            self._remove_tensorboard_staging()  # every event file is in the store: nothing is lost
        finally:
            if self.lease:
                self.lease.release()

    def _remove_tensorboard_staging(self) -> None:
        if self._tensorboard_staging is not None:
            shutil.rmtree(self._tensorboard_staging, ignore_errors=True)
            self._tensorboard_staging = None

    def write_manifest(self, **extra: Any) -> None:
        self._check_open()
        self.manifest.update(extra)
        self._put(write_record(self.manifest), [MANIFEST])

    def write_text(self, key: str, text: str) -> None:
        self._check_open()
        self._put(text.encode(), [key])

    def tensorboard_dir(self) -> Path:
        """Where event files go: in place for a local store, else a local folder synced each epoch."""
        self._check_open()
        local = self.store.local_path(TENSORBOARD)
        if local is None:  # removed once closed with every upload done (a long-lived worker runs many)
            local = self._tensorboard_staging = Path(tempfile.mkdtemp(prefix="handgesture-tb-"))
        return local

    def sync_tensorboard(self, log_dir: Path) -> None:
        """Queue `log_dir`'s event files for a remote run folder (a local store already has them in place)."""
        self._check_open()
        if self.store.local_path(TENSORBOARD) is not None:
            return
        for path in sorted(log_dir.rglob("*")):
            if path.is_file():
                self.put_file(path, f"{TENSORBOARD}/{path.relative_to(log_dir).as_posix()}")

    def _apply_retention(self) -> list[str]:
        """Drop entries beyond last N and best K from the manifest; return the keys to delete."""
        entries = self.manifest["checkpoints"]
        keep = (
            {e["key"] for e in entries[-self.retention.keep_last :]}
            if self.retention.keep_last > 0
            else set()
        )
        by_metric = sorted(entries, key=lambda e: e["metrics"].get(BEST_METRIC, -1.0), reverse=True)
        keep |= {e["key"] for e in by_metric[: self.retention.keep_best]}
        keep |= self.retention.protected
        self.manifest["checkpoints"] = [e for e in entries if e["key"] in keep]
        return [e["key"] for e in entries if e["key"] not in keep]


def read_manifest(store: Store) -> dict[str, Any] | None:
    return read_record(store, MANIFEST, "run manifest", "checkpoints", list)


def manifest_entry(manifest: dict[str, Any], key: str) -> dict[str, Any] | None:
    """The manifest's record of `key`: a checkpoint, best_model.pth or best_weights.pth."""
    if key == BEST:
        return manifest.get("best")
    if key == BEST_WEIGHTS:
        return manifest.get("best_weights")
    return next((e for e in manifest["checkpoints"] if e["key"] == key), None)


def experiment_uri(storage_uri: str, experiment: str) -> str:
    return f"{root_uri(storage_uri)}/{experiment}"


def run_uri(storage_uri: str, experiment: str, run_name: str) -> str:
    return f"{experiment_uri(storage_uri, experiment)}/{run_name}"


def split_checkpoint_uri(uri: str) -> tuple[str, str]:
    """`.../run/checkpoints/x.pth` -> (`.../run`, `checkpoints/x.pth`); `.../run/best_model.pth` likewise."""
    parsed = urlparse(uri)
    if parsed.scheme == "file":
        if parsed.netloc not in ("", "localhost"):
            raise InvalidStorageURIError(
                f"invalid file URI {uri!r}: expected file:///absolute/path (no remote host)"
            )
        uri = root_uri(unquote(parsed.path))
    elif "://" not in uri:
        uri = root_uri(uri)
    parent, _, name = uri.rstrip("/").rpartition("/")
    grandparent, _, folder = parent.rpartition("/")
    if folder == CHECKPOINTS:
        return grandparent or "/", f"{CHECKPOINTS}/{name}"
    return parent or "/", name
