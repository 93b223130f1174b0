"""URI-addressed object stores: a local path / ``file://`` URI, or ``s3://bucket[/prefix]``.

Writes are atomic (an object is visible only once complete), so a checkpoint that a crash cut short is never
read back. The S3 store lives in :mod:`handgesture.storage_s3` and is imported only when an ``s3://`` URI is
opened, so local use never pays for importing Prefect.
"""

from __future__ import annotations

import hashlib
import logging
import os
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlparse

log = logging.getLogger(__name__)

SUPPORTED_SCHEMES = ("local path", "file://", "s3://")
MiB = 1024 * 1024
_PARTIAL = ".partial"  # suffix of in-progress temp files; never listed as keys


class StorageError(RuntimeError):
    """A store operation failed; the message names the URI or setting and what was expected."""


class UnsupportedSchemeError(StorageError): ...


class ObjectNotFoundError(StorageError): ...


class BucketNotFoundError(StorageError): ...


class StorageCredentialsError(StorageError): ...


class StorageUnreachableError(StorageError): ...


class ChecksumMismatchError(StorageError): ...


@dataclass(frozen=True)
class S3Settings:
    """How to reach S3. Plain values only: credentials come from saved blocks or the default AWS chain."""

    block: str | None = None  # "s3-bucket/<name>", "aws-credentials/<name>" or "minio-credentials/<name>"
    endpoint_url: str | None = None  # S3-compatible servers (MinIO, Ceph, moto)
    region: str | None = None
    # Unreachable servers: botocore "standard" retries (exponential backoff) bounded by these.
    max_retries: int = 4  # retries after the first attempt (botocore's "max_attempts" counts only these)
    connect_timeout: float = 5.0
    read_timeout: float = 60.0
    # Objects above the threshold go up and down as concurrent multipart transfers.
    multipart_threshold: int = 16 * MiB
    multipart_chunksize: int = 16 * MiB
    max_concurrency: int = 10


class Store(ABC):
    """Objects addressed by ``/``-separated keys relative to ``root``."""

    root: str

    def uri(self, key: str) -> str:
        key = _check_key(key, self.root, allow_empty=True)
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

    def local_path(self, key: str) -> Path | None:
        return None

    def etag(self, key: str) -> str | None:
        """An opaque version tag of the object (S3: its ETag), or None where the store has none."""
        return None

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.root!r})"


def _check_key(key: str, root: str, allow_empty: bool = False) -> str:
    stripped = key.rstrip("/")
    parts = stripped.split("/")
    bad_part = stripped and any(p in ("", ".", "..") for p in parts)
    if (not key and not allow_empty) or key.startswith("/") or bad_part or "\\" in key:
        raise StorageError(f"invalid key {key!r} under {root}: expected a relative '/'-separated key")
    return stripped


def open_store(uri: str, s3: S3Settings | None = None) -> Store:
    """Open the store rooted at ``uri``: a local path, ``file://...`` or ``s3://bucket[/prefix]``."""
    parsed = urlparse(str(uri))
    scheme = parsed.scheme.lower()
    if scheme == "s3":
        from handgesture.storage_s3 import S3Store

        if not parsed.netloc:
            raise StorageError(f"invalid S3 URI {uri!r}: expected s3://bucket[/prefix]")
        return S3Store(parsed.netloc, parsed.path.strip("/"), s3 or S3Settings())
    from handgesture.storage_local import LocalStore  # imports this module: imported when a store opens

    if scheme == "file":
        if parsed.netloc not in ("", "localhost"):
            raise StorageError(f"invalid file URI {uri!r}: expected file:///absolute/path (no remote host)")
        return LocalStore(Path(unquote(parsed.path)))
    if scheme == "" or (len(scheme) == 1 and os.name == "nt"):  # "C:\..." parses with scheme "c"
        return LocalStore(Path(str(uri)))
    supported = ", ".join(SUPPORTED_SCHEMES)
    raise UnsupportedSchemeError(
        f"unsupported storage URI {uri!r}: scheme '{scheme}://' is not one of {supported}"
    )


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(4 * MiB):
            digest.update(chunk)
    return digest.hexdigest()


def _verify(path: Path, uri: str, sha256: str | None) -> None:
    if sha256 is None:
        return
    actual = sha256_file(path)
    if actual != sha256.lower():
        raise ChecksumMismatchError(f"checksum mismatch for {uri}: expected sha256 {sha256}, got {actual}")


def cached_download(store: Store, key: str, cache_dir: Path, sha256: str | None = None) -> Path:
    """A local file with the object's bytes: the file itself for local stores, else a verified cached copy.

    Without ``sha256`` a cached copy is reused only while the remote object's ETag is unchanged.
    """
    real = store.local_path(key)
    if real is not None:
        if not real.is_file():
            raise ObjectNotFoundError(f"no such object: {real} (key {key!r} under {store.root})")
        _verify(real, store.uri(key), sha256)
        return real
    uri = store.uri(key)
    parsed = urlparse(uri)
    target = Path(cache_dir) / parsed.netloc / parsed.path.lstrip("/")
    tag_file = target.with_name(target.name + ".etag")
    remote_tag = None if sha256 else store.etag(key)
    if target.is_file():
        if sha256 is not None:
            try:
                _verify(target, uri, sha256)
                return target
            except ChecksumMismatchError:
                log.warning("cached copy %s of %s is corrupt; downloading again", target, uri)
        elif remote_tag and tag_file.is_file() and tag_file.read_text() == remote_tag:
            return target
    store.get_file(key, target)
    try:
        _verify(target, uri, sha256)
    except ChecksumMismatchError:
        target.unlink(missing_ok=True)
        raise
    if remote_tag is not None:
        tag_file.write_text(remote_tag)
    else:
        tag_file.unlink(missing_ok=True)
    return target
