"""Local copies of stored objects, verified by sha256 (or, without one, kept while the ETag holds)."""

from __future__ import annotations

import logging
from pathlib import Path
from urllib.parse import urlparse

from handgesture.errors import ChecksumMismatchError, InvalidStorageURIError, ObjectNotFoundError
from handgesture.storage.base import Store, sha256_file

log = logging.getLogger(__name__)


def verify(path: Path, uri: str, sha256: str | None) -> None:
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
        verify(real, store.uri(key), sha256)
        return real
    uri = store.uri(key)
    parsed = urlparse(uri)
    target = Path(cache_dir) / parsed.netloc / parsed.path.lstrip("/")
    if not target.resolve().is_relative_to(Path(cache_dir).resolve()):  # keys are checked; this is the guard
        raise InvalidStorageURIError(f"{uri} would be cached outside the download cache {cache_dir}")
    tag_file = target.with_name(target.name + ".etag")
    remote_tag = None if sha256 else store.etag(key)
    if target.is_file():
        if sha256 is not None:
            try:
                verify(target, uri, sha256)
                return target
            except ChecksumMismatchError:
                log.warning("cached copy %s of %s is corrupt; downloading again", target, uri)
        elif remote_tag and tag_file.is_file() and tag_file.read_text() == remote_tag:
            return target
    store.get_file(key, target)
    try:
        verify(target, uri, sha256)
    except ChecksumMismatchError:
        target.unlink(missing_ok=True)
        raise
    if remote_tag is not None:
        tag_file.write_text(remote_tag)
    else:
        tag_file.unlink(missing_ok=True)
    return target
