"""`<storage>/<experiment>/best` loads only the bytes that were promoted: the pointer's sha256 is required and
checked against the file, also when no run manifest records it. Local folder and S3 (moto_server)."""

import hashlib
import json

import pytest
import torch

from handgesture.checkpoints.best import POINTER, best_ref, read_best
from handgesture.checkpoints.format import SCHEMA_VERSION, to_bytes
from handgesture.checkpoints.locate import resolve_checkpoint
from handgesture.errors import CheckpointError
from handgesture.storage import S3Settings, open_store

KEY = "bare/checkpoints/e0001-s00000001.pth"  # a run folder without a manifest: nothing else records it
MARK = b"\x00\x00\xc0\x3f" * 16  # the bytes of torch.full((16,), 1.5) as float32


@pytest.fixture(params=["local", pytest.param("s3", marks=pytest.mark.s3)])
def storage(request, tmp_path) -> tuple[str, S3Settings | None]:
    if request.param == "local":
        return str(tmp_path / "runs"), None
    server, bucket = request.getfixturevalue("s3_env"), request.getfixturevalue("s3_bucket")
    return f"s3://{bucket}/runs", S3Settings(endpoint_url=server.endpoint_url)


def _promoted(storage, tmp_path, **pointer) -> tuple[str, bytes]:
    """A bare checkpoint and a pointer naming it (`pointer` overrides its fields); the checkpoint's bytes."""
    root, s3 = storage
    experiment = open_store(f"{root}/demo", s3)
    checkpoint = {"schema_version": SCHEMA_VERSION, "state_dict": {"w": torch.full((16,), 1.5)}, "epoch": 1}
    data = to_bytes(checkpoint)
    experiment.put_bytes(data, KEY)
    record = {"checkpoint": experiment.uri(KEY), "sha256": hashlib.sha256(data).hexdigest(), **pointer}
    experiment.put_bytes(json.dumps(record).encode(), POINTER)
    return experiment.uri(KEY), data


def _resolve(storage, tmp_path):
    root, s3 = storage
    return resolve_checkpoint(best_ref(root, "demo"), s3, cache_dir=tmp_path / "cache")


def test_a_pointer_with_the_files_sha256_loads(storage, tmp_path):
    uri, data = _promoted(storage, tmp_path)
    resolved = _resolve(storage, tmp_path)
    assert resolved.uri == uri and resolved.sha256 == hashlib.sha256(data).hexdigest()


@pytest.mark.parametrize("sha256", [None, "", "deadbeef", "D" * 64, 64])
def test_a_pointer_without_a_well_formed_sha256_is_refused(storage, tmp_path, sha256):
    uri, _ = _promoted(storage, tmp_path, sha256=sha256)
    with pytest.raises(CheckpointError) as info:
        _resolve(storage, tmp_path)
    assert f"{storage[0]}/demo/{POINTER}" in str(info.value) and uri in str(info.value)
    with pytest.raises(CheckpointError, match="sha256"):  # the retrain's read, too
        read_best(open_store(f"{storage[0]}/demo", storage[1]), storage[1])


def test_a_pointer_with_another_files_sha256_is_refused(storage, tmp_path):
    uri, _ = _promoted(storage, tmp_path, sha256=hashlib.sha256(b"other bytes").hexdigest())
    with pytest.raises(CheckpointError, match="failed verification") as info:
        _resolve(storage, tmp_path)
    assert f"{storage[0]}/demo/{POINTER}" in str(info.value) and uri in str(info.value)


def test_a_flipped_byte_in_a_file_no_manifest_records_is_refused(storage, tmp_path):
    uri, data = _promoted(storage, tmp_path)
    flipped = bytearray(data)
    flipped[data.index(MARK) + 5] ^= 0xFF  # inside the tensor's data: torch.load would read it
    open_store(f"{storage[0]}/demo", storage[1]).put_bytes(bytes(flipped), KEY)
    with pytest.raises(CheckpointError, match="failed verification") as info:
        _resolve(storage, tmp_path)
    assert f"{storage[0]}/demo/{POINTER}" in str(info.value) and uri in str(info.value)


def test_a_pointer_naming_a_folder_is_refused(storage, tmp_path):
    uri, _ = _promoted(storage, tmp_path)
    _promoted(storage, tmp_path, checkpoint=uri.rpartition("/checkpoints/")[0])
    with pytest.raises(CheckpointError, match="not a checkpoint file"):
        _resolve(storage, tmp_path)
