"""URI -> store: a local path or ``file://...`` URI, or ``s3://bucket[/prefix]``.

The S3 store is imported only when an ``s3://`` URI is opened, so local use never pays for importing
Prefect and boto3.
"""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import unquote, urlparse

from handgesture.config import StorageConfig
from handgesture.errors import InvalidStorageURIError, UnsupportedSchemeError
from handgesture.storage.base import S3Settings, Store
from handgesture.storage.local import LocalStore

SUPPORTED_SCHEMES = ("local path", "file://", "s3://")


def open_store(uri: str, s3: S3Settings | None = None) -> Store:
    """Open the store rooted at ``uri``: a local path, ``file://...`` or ``s3://bucket[/prefix]``."""
    parsed = urlparse(str(uri))
    scheme = parsed.scheme.lower()
    if scheme == "s3":
        from handgesture.storage.s3 import S3Store

        if not parsed.netloc or {".", ".."} & set(parsed.path.split("/")):
            raise InvalidStorageURIError(
                f"invalid S3 URI {uri!r}: expected s3://bucket[/prefix] without '.' or '..' segments"
            )
        return S3Store(parsed.netloc, parsed.path.strip("/"), s3 or S3Settings())
    if scheme == "file":
        if parsed.netloc not in ("", "localhost"):
            raise InvalidStorageURIError(
                f"invalid file URI {uri!r}: expected file:///absolute/path (no remote host)"
            )
        return LocalStore(Path(unquote(parsed.path)))
    if is_local(uri):
        return LocalStore(Path(str(uri)))
    supported = ", ".join(SUPPORTED_SCHEMES)
    raise UnsupportedSchemeError(
        f"unsupported storage URI {uri!r}: scheme '{scheme}://' is not one of {supported}"
    )


def is_local(uri: str) -> bool:
    """A plain path (no scheme); "C:\\..." parses with scheme "c" on Windows."""
    scheme = urlparse(str(uri)).scheme
    return scheme == "" or (len(scheme) == 1 and os.name == "nt")


def root_uri(uri: str) -> str:
    """The canonical form of a storage root: local paths absolute, URIs as given, no trailing slash."""
    base = str(uri).rstrip("/")
    return str(Path(base).expanduser().resolve()) if "://" not in base else base


def s3_settings(storage: StorageConfig) -> S3Settings:
    """The S3 settings a config's `storage` section names (block and endpoint, never secrets)."""
    return S3Settings(
        block=storage.block,
        endpoint_url=storage.endpoint_url,
        max_retries=storage.max_retries,
    )
