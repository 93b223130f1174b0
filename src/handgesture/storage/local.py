"""The local store: a folder, with atomic writes (temp file + fsync + rename + directory fsync)."""

from __future__ import annotations

import errno
import fcntl
import hashlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from handgesture.errors import ObjectNotFoundError, StorageError
from handgesture.storage.base import PARTIAL, MiB, Store, check_key

DISK_FULL = (errno.ENOSPC, errno.EDQUOT)


@contextmanager
def atomic_target(target: Path, durable: bool = True) -> Iterator[Path]:
    """Yield a temp path next to ``target``; on success fsync it, rename it over ``target``, fsync the dir.

    ``durable=False`` skips both fsyncs: the file is still never seen half-written, but may not survive a
    power cut. For copies that only need to outlive the process, like the upload spool.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=PARTIAL, dir=target.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        if durable:
            with open(tmp, "rb+") as fh:
                os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException as exc:
        tmp.unlink(missing_ok=True)
        if isinstance(exc, OSError) and exc.errno in DISK_FULL:
            raise StorageError(f"cannot write {target}: {exc.strerror} (the disk is full)") from exc
        raise
    if durable:
        _fsync_dir(target.parent)


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # some platforms cannot open directories
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class LocalStore(Store):
    def __init__(self, root: Path):
        self.root = str(root.expanduser().absolute())
        self._root = Path(self.root)

    def _path(self, key: str) -> Path:
        return self._root / check_key(key, self.root)

    def local_path(self, key: str) -> Path | None:
        return self._path(key)

    def put_file(self, local_path: Path, key: str) -> None:
        with atomic_target(self._path(key)) as tmp, open(local_path, "rb") as src, open(tmp, "wb") as dst:
            shutil.copyfileobj(src, dst, 8 * MiB)

    def put_bytes(self, data: bytes, key: str) -> None:
        with atomic_target(self._path(key)) as tmp:
            tmp.write_bytes(data)

    def _existing(self, key: str) -> Path:
        path = self._path(key)
        if not path.is_file():
            raise ObjectNotFoundError(f"no such object: {path} (key {key!r} under {self.root})")
        return path

    def get_file(self, key: str, local_path: Path) -> Path:
        src = self._existing(key)
        local_path = Path(local_path)
        if local_path.exists() and local_path.samefile(src):
            return local_path
        with atomic_target(local_path) as tmp:
            shutil.copyfile(src, tmp)
        return local_path

    def get_bytes(self, key: str) -> bytes:
        return self._existing(key).read_bytes()

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def list(self, prefix: str = "") -> list[str]:
        # Walk only the deepest directory the prefix pins down; match the rest as a string, like S3.
        base = self._root.joinpath(*prefix.split("/")[:-1]) if "/" in prefix else self._root
        if not base.is_dir():
            return []
        keys = []
        for dirpath, _dirs, files in os.walk(base):
            rel_dir = Path(dirpath).relative_to(self._root).as_posix()
            for name in files:
                key = name if rel_dir == "." else f"{rel_dir}/{name}"
                if key.startswith(prefix) and not name.endswith(PARTIAL):
                    keys.append(key)
        return sorted(keys)

    def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)

    def read_versioned(self, key: str) -> tuple[bytes, str] | None:
        try:
            data = self._path(key).read_bytes()
        except FileNotFoundError:
            return None
        return data, hashlib.sha256(data).hexdigest()

    def create_exclusive(self, data: bytes, key: str) -> bool:
        target = self._path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, staged = tempfile.mkstemp(prefix=f".{target.name}.", suffix=PARTIAL, dir=target.parent)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.link(staged, target)  # fails if the target exists: creation is one atomic step
            return True
        except FileExistsError:
            return False
        finally:
            os.unlink(staged)

    def replace_if(self, data: bytes, key: str, version: str) -> bool:
        target = self._path(key)
        with folder_lock(target.parent):  # check and replace as one step among cooperating processes
            current = self.read_versioned(key)
            if current is None or current[1] != version:
                return False
            self.put_bytes(data, key)
            return True


@contextmanager
def folder_lock(folder: Path) -> Iterator[None]:
    """An exclusive advisory lock on a folder (flock on its descriptor): no lock file is left behind."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock
