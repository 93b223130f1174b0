"""A store that records every write and delete, in order, on top of a real local store; it reports itself as
remote, so a run folder on it takes the background upload path, as with S3."""

from __future__ import annotations

import json
import threading
from pathlib import Path

from handgesture.storage.local import LocalStore


class RecordingStore(LocalStore):
    def __init__(self, root: Path, remote: bool = True):
        super().__init__(root)
        self.remote = remote
        self.events: list[tuple[str, str]] = []  # ("put" | "delete", key), in the order they happened
        self.manifests: list[tuple[int, dict]] = []  # (index in events, content) of each manifest written
        self._lock = threading.Lock()

    def _record(self, what: str, key: str) -> None:
        with self._lock:
            self.events.append((what, key))
            if what == "put" and key == "manifest.json":
                self.manifests.append((len(self.events) - 1, json.loads(self.get_bytes(key))))

    def put_file(self, local_path: Path, key: str) -> None:
        super().put_file(local_path, key)
        self._record("put", key)

    def put_bytes(self, data: bytes, key: str) -> None:
        super().put_bytes(data, key)
        self._record("put", key)

    def delete(self, key: str) -> None:
        super().delete(key)
        self._record("delete", key)

    def local_path(self, key: str) -> Path | None:
        return None if self.remote else super().local_path(key)

    def puts(self) -> list[str]:
        return [key for what, key in self.events if what == "put"]
