"""A run folder in a store: checkpoints committed atomically, recorded in a manifest written last.

Layout of `<storage>/<experiment>/<run>/`:
    checkpoints/e0003-s00000120.pth   every committed checkpoint (retention keeps last N and best K)
    best_model.pth                    the best checkpoint so far (the tutorial's file name)
    manifest.json                     sha256, size, epoch, step and metrics of each checkpoint; written last
    config.yaml                       the resolved config
    tensorboard/                      event files
"""

from __future__ import annotations

import hashlib
import json
import logging
import tempfile
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from handgesture import checkpoint as ckpt
from handgesture.storage import Store
from handgesture.uploader import BackgroundUploader

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"
BEST = "best_model.pth"
CHECKPOINTS = "checkpoints"
MANIFEST_VERSION = 1


@dataclass
class Retention:
    keep_last: int = 2
    keep_best: int = 1
    protected: set[str] = field(default_factory=set)  # keys never deleted (the checkpoint a run resumed from)


class RunFolder:
    """Commits checkpoints into one run's folder of a store and keeps its manifest.

    Call `close()` when done: with a remote store it waits until every upload is confirmed.
    """

    def __init__(self, store: Store, retention: Retention | None = None, spool_dir: Path | None = None):
        self.store = store
        root_digest = hashlib.sha256(store.root.encode()).hexdigest()[:16]
        self.spool_dir = spool_dir or Path(tempfile.gettempdir()) / "handgesture-spool" / root_digest
        self.retention = retention or Retention()
        self.manifest = read_manifest(store) or {"version": MANIFEST_VERSION, "checkpoints": [], "best": None}
        # Remote stores upload in the background from a local spool, in commit order (see uploader.py).
        remote = store.local_path(MANIFEST) is None
        self.uploader = BackgroundUploader(store, self.spool_dir) if remote else None

    @property
    def uri(self) -> str:
        return self.store.root

    def commit(self, checkpoint: dict[str, Any], *, is_best: bool) -> dict[str, Any]:
        """Write the checkpoint (and best_model.pth), then the manifest: visible only once complete."""
        data = ckpt.to_bytes(checkpoint)
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
            "metrics": _scalars(checkpoint.get("metrics", {})),
            "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        self._put(data, [key, BEST] if is_best else [key])
        if is_best:
            self.manifest["best"] = {**entry, "key": BEST, "uri": self.store.uri(BEST), "source": key}
        self.manifest["checkpoints"] = [e for e in self.manifest["checkpoints"] if e["key"] != key] + [entry]
        doomed = self._apply_retention()
        self.write_manifest()
        # Files go only after the manifest stops naming them, so it never points at a deleted checkpoint.
        for stale in doomed:
            self._delete(stale)
        return entry

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
        if self.uploader is None:
            self.store.put_file(local_path, key)
        else:
            self.uploader.put_file(local_path, key)

    def close(self, timeout: float) -> None:
        """Wait for queued uploads (remote stores); fails naming the local copies kept if they cannot go."""
        if self.uploader is not None:
            self.uploader.close(timeout)

    def write_manifest(self, **extra: Any) -> None:
        self.manifest.update(extra)
        self._put(json.dumps(self.manifest, indent=2).encode(), [MANIFEST])

    def write_text(self, key: str, text: str) -> None:
        self._put(text.encode(), [key])

    def _apply_retention(self) -> list[str]:
        """Drop entries beyond last N and best K from the manifest; return the keys to delete."""
        entries = self.manifest["checkpoints"]
        keep = (
            {e["key"] for e in entries[-self.retention.keep_last :]}
            if self.retention.keep_last > 0
            else set()
        )
        by_metric = sorted(entries, key=lambda e: e["metrics"].get("gesture/f1_score", -1.0), reverse=True)
        keep |= {e["key"] for e in by_metric[: self.retention.keep_best]}
        keep |= self.retention.protected
        self.manifest["checkpoints"] = [e for e in entries if e["key"] in keep]
        return [e["key"] for e in entries if e["key"] not in keep]


def read_manifest(store: Store) -> dict[str, Any] | None:
    if not store.exists(MANIFEST):
        return None
    try:
        manifest = json.loads(store.get_bytes(MANIFEST))
    except json.JSONDecodeError as exc:
        raise ckpt.CheckpointError(f"run manifest {store.uri(MANIFEST)} is not valid JSON: {exc}") from None
    if not isinstance(manifest, dict) or not isinstance(manifest.get("checkpoints"), list):
        raise ckpt.CheckpointError(f"run manifest {store.uri(MANIFEST)} has no 'checkpoints' list")
    return manifest


def _scalars(metrics: dict[str, Any]) -> dict[str, float]:
    return {k: float(v) for k, v in metrics.items() if isinstance(v, int | float)}
