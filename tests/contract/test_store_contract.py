"""The Store contract, run against every store: a local folder and S3 (a real moto_server on 127.0.0.1).

What one store does, the other must do the same way: round trips, overwrites, S3-like string-prefix
listing, deletes, errors that name the full URI, rejected keys and verified downloads. What only one store
has (fsync and rename, multipart transfers, credentials) stays in tests/unit/storage/test_local.py and
tests/s3/test_storage_s3.py.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from handgesture.errors import ChecksumMismatchError, InvalidStorageURIError, ObjectNotFoundError
from handgesture.storage import Store, cached_download


def test_keys_address_objects_under_the_root(store: Store):
    assert store.uri("a/b.pt") == f"{store.root}/a/b.pt"
    assert store.uri("") == store.root


def test_round_trip_bytes_and_files(store: Store, tmp_path: Path):
    store.put_bytes(b"hello", "a/b/c.bin")
    assert store.get_bytes("a/b/c.bin") == b"hello"
    src = tmp_path / "src.bin"
    src.write_bytes(os.urandom(200_000))
    store.put_file(src, "ckpt/epoch-1.pt")
    out = store.get_file("ckpt/epoch-1.pt", tmp_path / "dl" / "copy.pt")
    assert out == tmp_path / "dl" / "copy.pt" and out.read_bytes() == src.read_bytes()
    assert [p.name for p in out.parent.iterdir()] == ["copy.pt"]  # no temp files left behind


def test_overwrite_replaces_content(store: Store):
    store.put_bytes(b"old", "k")
    store.put_bytes(b"new", "k")
    assert store.get_bytes("k") == b"new"


def test_list_exists_delete(store: Store):
    assert store.list() == []
    keys = ["run1/ckpt/e2.pt", "run1/ckpt/e1.pt", "run1/manifest.json", "run2/ckpt/e1.pt", "top.txt"]
    for key in keys:
        store.put_bytes(key.encode(), key)
    assert store.list() == sorted(keys)
    assert store.list("run1/") == ["run1/ckpt/e1.pt", "run1/ckpt/e2.pt", "run1/manifest.json"]
    assert store.list("run1/ckpt/e") == ["run1/ckpt/e1.pt", "run1/ckpt/e2.pt"]
    assert store.list("run") == store.list()[:-1]  # a string prefix, as S3 has it
    assert store.list("nope/") == []
    assert store.exists("top.txt") and not store.exists("run1")  # folders are not objects
    store.delete("run1/ckpt/e1.pt")
    store.delete("run1/ckpt/e1.pt")  # a missing key is not an error
    assert not store.exists("run1/ckpt/e1.pt")
    assert store.list("run1/ckpt/") == ["run1/ckpt/e2.pt"]


def test_a_missing_key_is_an_error_naming_its_uri_and_leaves_no_file(store: Store, tmp_path: Path):
    uri = store.uri("nope/x.pt")
    for read in (
        lambda: store.get_bytes("nope/x.pt"),
        lambda: store.get_file("nope/x.pt", tmp_path / "out.pt"),
        lambda: cached_download(store, "nope/x.pt", tmp_path / "cache"),
    ):
        with pytest.raises(ObjectNotFoundError) as info:
            read()
        assert uri in str(info.value)
    assert list(tmp_path.rglob("*.pt*")) == []


@pytest.mark.parametrize("key", ["", "/abs", "../escape", "a/../../b", "a//b", "./a", "a\\b"])
def test_keys_that_could_leave_the_root_are_rejected(store: Store, key: str):
    with pytest.raises(InvalidStorageURIError, match="invalid key"):
        store.put_bytes(b"x", key)


def test_cached_download_verifies_the_sha256(store: Store, tmp_path: Path):
    data = os.urandom(100_000)
    digest = hashlib.sha256(data).hexdigest()
    store.put_bytes(data, "r1/e1.pt")
    cache = tmp_path / "cache"
    assert cached_download(store, "r1/e1.pt", cache, digest).read_bytes() == data
    wrong = "ab" * 32
    with pytest.raises(ChecksumMismatchError) as info:
        cached_download(store, "r1/e1.pt", tmp_path / "other-cache", wrong)
    message = str(info.value)
    assert store.uri("r1/e1.pt") in message and wrong in message and digest in message
    assert not list(tmp_path.glob("other-cache/**/e1.pt"))  # a copy that fails its check is not kept


def test_conditional_writes_create_once_and_replace_only_the_version_read(store: Store):
    assert store.read_versioned("lease.json") is None
    assert store.create_exclusive(b"first", "lease.json")
    assert not store.create_exclusive(b"second", "lease.json")  # already there: nothing written
    data, version = store.read_versioned("lease.json")
    assert data == b"first"
    assert store.replace_if(b"renewed", "lease.json", version)
    assert not store.replace_if(b"stale", "lease.json", version)  # the version it read is gone
    assert store.read_versioned("lease.json")[0] == b"renewed"
    assert store.list() == ["lease.json"]  # no staging files left behind
