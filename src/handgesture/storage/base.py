"""The store interface: objects addressed by `/`-separated keys under a root URI, and how to reach S3.

Writes are atomic in every store (an object is visible only once complete), so a checkpoint that a crash cut
short is never read back.
"""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path

from handgesture.errors import InvalidStorageURIError

MiB = 1024 * 1024
PARTIAL = ".partial"  # suffix of in-progress temp files; never listed as keys


@dataclass(frozen=True)
class S3Settings:
    """How to reach S3. Plain values only: credentials come from saved blocks or the default AWS chain."""

    block: str | None = None  # "s3-bucket/<name>", "aws-credentials/<name>" or "minio-credentials/<name>"
    endpoint_url: str | None = None  # S3-compatible servers (MinIO, Ceph, moto)
    region: str | None = None
    # Unreachable servers: botocore "standard" retries (exponential backoff) bounded by these.
    max_retries: int = 4  # retries after the first attempt (botocore's "max_attempts" counts only these)
    connect_timeout: float = 5.0
    # An endpoint that accepts connections and never answers fails after (max_retries + 1) x read_timeout,
    # about a minute, and is not retried further: it is no S3 endpoint, or not this one.
    read_timeout: float = 10.0
    # Objects above the threshold go up and down as concurrent multipart transfers.
    multipart_threshold: int = 16 * MiB
    multipart_chunksize: int = 16 * MiB
    max_concurrency: int = 10


class Store(ABC):
    """Objects addressed by ``/``-separated keys relative to ``root``."""

    root: str

    def uri(self, key: str) -> str:
        key = check_key(key, self.root, allow_empty=True)
        return f"{self.root.rstrip('/')}/{key}" if key else self.root

    @abstractmethod
    def put_file(self, local_path: Path, key: str) -> None: ...

    @abstractmethod
    def put_bytes(self, data: bytes, key: str) -> None: ...

    @abstractmethod
    def get_file(self, key: str, local_path: Path) -> Path: ...

    @abstractmethod
    def get_bytes(self, key: str) -> bytes: ...

    @abstractmethod
    def exists(self, key: str) -> bool: ...

    @abstractmethod
    def list(self, prefix: str = "") -> list[str]: ...

    @abstractmethod
    def delete(self, key: str) -> None: ...

    # Conditional writes: what a lease is built on (checkpoints/lease.py). A version is an opaque tag of the
    # object's bytes (S3: its ETag).

    @abstractmethod
    def read_versioned(self, key: str) -> tuple[bytes, str] | None:
        """The object's bytes and version, or None when there is none."""

    @abstractmethod
    def create_exclusive(self, data: bytes, key: str) -> bool:
        """Write `key` only if it does not exist; False when it did (nothing written)."""

    @abstractmethod
    def replace_if(self, data: bytes, key: str, version: str) -> bool:
        """Overwrite `key` only if it is still at `version`; False when it changed (nothing written)."""

    def local_path(self, key: str) -> Path | None:
        return None

    def etag(self, key: str) -> str | None:
        """An opaque version tag of the object (S3: its ETag), or None where the store has none."""
        return None

    def describe(self) -> str:
        """The root, and for a remote store the server it lives on: what an error about reaching it names."""
        return self.root

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.root!r})"


def check_key(key: str, root: str, allow_empty: bool = False) -> str:
    """``key`` without a trailing slash; a key that could leave ``root`` is an error."""
    stripped = key.rstrip("/")
    parts = stripped.split("/")
    bad_part = stripped and any(p in ("", ".", "..") for p in parts)
    if (not key and not allow_empty) or key.startswith("/") or bad_part or "\\" in key:
        raise InvalidStorageURIError(
            f"invalid key {key!r} under {root}: expected a relative '/'-separated key"
        )
    return stripped


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(4 * MiB):
            digest.update(chunk)
    return digest.hexdigest()
