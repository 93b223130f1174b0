"""LocalStore and the URI front door: round-trips, atomic writes, listing, errors."""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

import pytest

from handgesture.errors import StorageError
from handgesture.storage import SUPPORTED_SCHEMES, cached_download, open_store, sha256_file
from handgesture.storage import local as storage_local
from handgesture.storage.local import LocalStore


@pytest.fixture
def store(tmp_path: Path) -> LocalStore:
    return open_store(str(tmp_path / "runs"))


def test_open_store_normalises_local_paths_and_file_uris(tmp_path: Path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert open_store("runs").root == str(tmp_path / "runs")
    assert open_store(f"file://{tmp_path}/runs").root == str(tmp_path / "runs")
    assert open_store(f"file://localhost{tmp_path}/my%20runs").root == str(tmp_path / "my runs")
    assert isinstance(open_store(tmp_path), LocalStore)
    assert open_store("runs").uri("a/b.pt") == f"{tmp_path}/runs/a/b.pt"


@pytest.mark.parametrize("uri", ["gs://bucket/x", "http://example.com/x", "ftp://host/x"])
def test_unsupported_scheme_lists_supported_ones(uri):
    with pytest.raises(StorageError) as info:
        open_store(uri)
    for scheme in SUPPORTED_SCHEMES:
        assert scheme in str(info.value)
    assert uri in str(info.value)


def test_file_uri_with_remote_host_is_rejected():
    with pytest.raises(StorageError, match="no remote host"):
        open_store("file://otherhost/data")


def test_writes_create_the_missing_root_and_objects_are_plain_files(store: LocalStore):
    assert not Path(store.root).exists()
    store.put_bytes(b"hello", "ckpt/epoch-1.pt")
    assert store.local_path("ckpt/epoch-1.pt") == Path(store.root) / "ckpt" / "epoch-1.pt"
    assert store.local_path("ckpt/epoch-1.pt").read_bytes() == b"hello"


def _no_temp_files(root: Path) -> bool:
    return not [p for p in root.rglob("*") if p.name.endswith(".partial")]


def test_failed_write_leaves_old_content_and_no_temp_file(store: LocalStore, tmp_path: Path, monkeypatch):
    store.put_bytes(b"committed", "ckpt.pt")
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(3_000_000))

    def torn_copy(src, dst, length=0):
        dst.write(src.read(1000))  # a partial write, then the "crash"
        raise OSError("disk full")

    monkeypatch.setattr(shutil, "copyfileobj", torn_copy)
    with pytest.raises(OSError, match="disk full"):
        store.put_file(big, "ckpt.pt")
    with pytest.raises(OSError, match="disk full"):
        store.put_file(big, "new.pt")
    assert store.get_bytes("ckpt.pt") == b"committed"
    assert not store.exists("new.pt")
    assert _no_temp_files(Path(store.root))


def test_unreadable_source_never_creates_target(store: LocalStore, tmp_path: Path):
    with pytest.raises(OSError):
        store.put_file(tmp_path / "does-not-exist", "x.pt")
    assert not store.exists("x.pt")
    assert _no_temp_files(Path(store.root))


def test_partial_file_is_invisible_until_rename(store: LocalStore, tmp_path: Path, monkeypatch):
    """While the data is being written, neither the key nor list() shows it."""
    seen = {}
    real_replace = os.replace

    def spy_replace(src, dst):
        seen["exists"] = store.exists("k.pt")
        seen["list"] = store.list()
        seen["fsynced_size"] = Path(src).stat().st_size
        real_replace(src, dst)

    monkeypatch.setattr(storage_local.os, "replace", spy_replace)
    store.put_bytes(b"x" * 5000, "k.pt")
    assert seen == {"exists": False, "list": [], "fsynced_size": 5000}
    assert store.list() == ["k.pt"]


def test_put_fsyncs_file_and_directory(store: LocalStore, monkeypatch):
    calls = []
    real_fsync = os.fsync
    monkeypatch.setattr(storage_local.os, "fsync", lambda fd: calls.append(fd) or real_fsync(fd))
    store.put_bytes(b"data", "a/k")
    assert len(calls) == 2  # the temp file before the rename, the directory after it


def test_sha256_and_cached_download_local_returns_real_path(store: LocalStore, tmp_path: Path):
    store.put_bytes(b"weights", "m.pt")
    digest = hashlib.sha256(b"weights").hexdigest()
    assert sha256_file(store.local_path("m.pt")) == digest
    cache = tmp_path / "cache"
    assert cached_download(store, "m.pt", cache, digest) == store.local_path("m.pt")
    assert cached_download(store, "m.pt", cache) == store.local_path("m.pt")
    assert not cache.exists()  # no copy made
    with pytest.raises(StorageError) as info:
        cached_download(store, "m.pt", cache, "0" * 64)
    assert "0" * 64 in str(info.value) and digest in str(info.value) and "m.pt" in str(info.value)
    with pytest.raises(StorageError, match="missing.pt"):
        cached_download(store, "missing.pt", cache)


def test_get_file_onto_itself_is_a_no_op(store: LocalStore):
    store.put_bytes(b"abc", "k")
    assert store.get_file("k", store.local_path("k")).read_bytes() == b"abc"
