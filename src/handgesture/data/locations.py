"""The two places a dataset's bytes can be: a local file, or an ``s3://`` object. Each answers the same few
questions (list a folder or prefix, read a range, read all), so `sources` composes archives and prefixes
without caring which.

S3 is reached through the project's S3 store (`storage.s3`: a saved Prefect block or the default AWS
credential chain, `storage.endpoint_url`), so its errors say what was wrong the same way: a missing bucket,
object or prefix, or credentials the bucket refuses, is bad input (`InputError`, exit 2). Which store
settings this process uses is set once by `sources.activate`; no credential ever travels in a URI.
"""

from __future__ import annotations

import os
import threading
from urllib.parse import urlsplit

from handgesture.errors import DataError
from handgesture.storage.base import S3Settings


class Locations:
    """This process's way to the bytes: S3 stores by bucket, open local archives by path."""

    def __init__(self, s3: S3Settings | None = None):
        self.s3 = s3 or S3Settings()
        self._stores: dict = {}
        self._fds: dict[str, int] = {}
        self._lock = threading.Lock()
        self._pid = os.getpid()

    def close(self) -> None:
        with self._lock:
            for fd in self._fds.values():
                os.close(fd)
            self._fds.clear()

    def store(self, bucket: str):
        if self._pid != os.getpid():  # a forked worker: its parent's connections are not its to share
            self._stores, self._pid = {}, os.getpid()
        with self._lock:
            if bucket not in self._stores:  # boto3 is imported only once S3 is read
                from handgesture.storage.s3 import S3Store

                self._stores[bucket] = S3Store(bucket, "", self.s3, shared=True)  # the client outlives a task
            return self._stores[bucket]

    def read_range(self, url: str, start: int, length: int) -> bytes:
        if is_s3(url):
            bucket, key = split_s3(url)
            return self.store(bucket).get_range(key, start, length)
        return os.pread(self._fd(url), length, start)  # no shared file position: safe from any thread

    def read_tail(self, url: str, length: int) -> tuple[bytes, int]:
        """The last ``length`` bytes of an ``s3://`` object and its size, in one request."""
        bucket, key = split_s3(url)
        return self.store(bucket).get_tail(key, length)

    def read_all(self, url: str) -> bytes:
        if is_s3(url):
            bucket, key = split_s3(url)
            return self.store(bucket).get_bytes(key)
        with open(url, "rb") as fh:
            return fh.read()

    def objects(self, url: str) -> list[tuple[str, int, str]]:
        """(key, size, ETag) of each object under an ``s3://`` prefix, keys relative to it."""
        bucket, key = split_s3(url)
        prefix = f"{key.rstrip('/')}/" if key else ""
        return [(k[len(prefix) :], size, etag) for k, size, etag in self.store(bucket).objects(prefix)]

    def object_stat(self, url: str) -> tuple[int, str] | None:
        """Size and ETag of one ``s3://`` object, None when there is none."""
        bucket, key = split_s3(url)
        found = [(size, etag) for k, size, etag in self.store(bucket).objects(key) if k == key]
        return found[0] if found else None

    def _fd(self, path: str) -> int:
        with self._lock:
            if path not in self._fds:
                self._fds[path] = os.open(path, os.O_RDONLY)
            return self._fds[path]


def is_s3(url: str) -> bool:
    return url.lower().startswith("s3://")


def split_s3(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    if not parts.netloc or "@" in parts.netloc:
        raise DataError(
            f"invalid S3 URI {parts.scheme}://{parts.netloc.rpartition('@')[2]}...: "
            "expected s3://bucket/key (credentials come from storage.block or the environment)"
        )
    return parts.netloc, parts.path.lstrip("/")
