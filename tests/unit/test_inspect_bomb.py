"""A checkpoint whose zip members inflate far beyond the file (a zip bomb) is refused before torch.load
allocates them, while real checkpoints of every architecture, optimizer state included, still load.

torch writes its members stored, but its reader inflates deflated ones too, at the size the zip declares:
a 1 MB file made `inspect` allocate a 1 GiB tensor and exit 0."""

import collections
import io
import pickle
import struct
import zlib

import pytest
import torch
from handgesture_cli.main import main

from handgesture.checkpoints.format import (
    HARMLESS_BYTES,
    SCHEMA_VERSION,
    check_member_sizes,
    from_bytes,
    size_limits,
    to_bytes,
)
from handgesture.errors import CheckpointError
from handgesture.labels import HAGRID_TARGETS, HAGRID_V2_TARGETS
from handgesture.models import ARCHITECTURES, build_model

CHUNK = 2**24  # 16 MiB of zeros, deflated once and repeated


def zip_archive(members: list[tuple[str, bytes, int, int, int]]) -> bytes:
    """A zip of (name, raw data, method, crc, size unpacked) members, written by hand so that a deflated
    member's data can be made without inflating it here."""
    body, directory = b"", b""
    for name, raw, method, crc, size in members:
        encoded = name.encode()
        sizes = (crc, len(raw), size, len(encoded))
        local = struct.pack("<IHHHHHIIIHH", 0x04034B50, 20, 0, method, 0, 0, *sizes, 0)
        directory += struct.pack(
            "<IHHHHHHIIIHHHHHII", 0x02014B50, 20, 20, 0, method, 0, 0, *sizes, 0, 0, 0, 0, 0, len(body),
        ) + encoded  # fmt: skip
        body += local + encoded + raw
    end = struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, len(members), len(members), len(directory), len(body), 0)
    return body + directory + end


def deflated_zeros(chunks: int) -> tuple[bytes, int]:
    """(raw deflate stream, crc32) of `chunks` x CHUNK zero bytes: a full flush makes each chunk's blocks
    independent, so one chunk's blocks repeat, and 1 GiB deflates to about 1 MB in a tenth of a second."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    block = compressor.compress(bytes(CHUNK)) + compressor.flush(zlib.Z_FULL_FLUSH)
    final = zlib.compressobj(9, zlib.DEFLATED, -15).flush()
    crc, zeros = 0, bytes(CHUNK)
    for _ in range(chunks):
        crc = zlib.crc32(zeros, crc)
    return block * chunks + final, crc


class _Storage:
    def __init__(self, key: str, numel: int):
        self.key, self.numel = key, numel


class _Tensor:
    """Pickles as torch.save pickles a float32 tensor over a whole storage, without having its data."""

    def __init__(self, storage: _Storage):
        self.storage = storage

    def __reduce__(self):
        args = (self.storage, 0, (self.storage.numel,), (1,), False, collections.OrderedDict())
        return torch._utils._rebuild_tensor_v2, args


class _Pickler(pickle.Pickler):
    def persistent_id(self, obj):
        if isinstance(obj, _Storage):
            return ("storage", torch.FloatStorage, obj.key, "cpu", obj.numel)
        return None


def bomb(chunks_per_tensor: int, tensors: int = 1) -> bytes:
    """A checkpoint of `tensors` float32 zero tensors of chunks_per_tensor x 16 MiB each, deflated."""
    storages = [_Storage(str(i), chunks_per_tensor * CHUNK // 4) for i in range(tensors)]
    checkpoint = {"schema_version": SCHEMA_VERSION, "state_dict": {f"w{s.key}": _Tensor(s) for s in storages}}
    buffer = io.BytesIO()
    _Pickler(buffer, protocol=2).dump(checkpoint)
    stored = [("data.pkl", buffer.getvalue()), ("byteorder", b"little"), ("version", b"3\n")]
    members = [(f"archive/{name}", raw, 0, zlib.crc32(raw), len(raw)) for name, raw in stored]
    raw, crc = deflated_zeros(chunks_per_tensor)
    members += [(f"archive/data/{s.key}", raw, 8, crc, chunks_per_tensor * CHUNK) for s in storages]
    return zip_archive(members)


def test_a_1_mb_file_inflating_to_a_1_gib_tensor_is_refused_by_inspect_in_one_line(tmp_path, capsys):
    path = tmp_path / "bomb.pth"
    path.write_bytes(bomb(chunks_per_tensor=64))  # 64 x 16 MiB: one 1 GiB tensor
    assert path.stat().st_size < 2 * 2**20
    assert main(["inspect", str(path)]) == 2
    err = capsys.readouterr().err
    member_limit, _ = size_limits()
    assert err.startswith("error: ") and err.count("\n") == 1
    assert str(path) in err and "'archive/data/0'" in err and f"limit of {member_limit}" in err


def test_members_each_under_the_limit_but_too_many_in_all_are_refused():
    member_limit, total_limit = size_limits()
    chunks = member_limit // CHUNK  # each member just under its own limit...
    tensors = total_limit // (chunks * CHUNK) + 1  # ...and enough of them to pass the total's
    with pytest.raises(CheckpointError, match=rf"^many\.pth: .* in all, over the limit of {total_limit} "):
        from_bytes(bomb(chunks, tensors), "many.pth")


def test_the_limits_are_well_below_the_bombs_and_above_every_real_tensor():
    member_limit, total_limit = size_limits()
    assert 512 * 2**20 < member_limit < 2**30 < total_limit < 4 * 2**30


def adam_checkpoint_sizes(name: str, classes: int) -> list[tuple[str, int]]:
    """The members a training checkpoint of `name` declares: each state_dict entry (cloned one by one, so
    ViT's shared encoder twice) and Adam's two moments of each parameter, from shapes on the meta device."""
    with torch.device("meta"):
        model = build_model(name, classes)
    nbytes = [t.numel() * t.element_size() for t in model.state_dict().values()]
    nbytes += [2 * p.numel() * p.element_size() for p in model.parameters()]  # exp_avg and exp_avg_sq
    return [(f"archive/data/{i}", size) for i, size in enumerate(nbytes)] + [("archive/data.pkl", 2**20)]


@pytest.mark.parametrize("classes", [len(HAGRID_TARGETS), len(HAGRID_V2_TARGETS)])
@pytest.mark.parametrize("name", list(ARCHITECTURES))
def test_every_architecture_s_checkpoint_with_adam_state_fits_the_limits(name, classes):
    check_member_sizes(adam_checkpoint_sizes(name, classes), name)  # raises if it does not


def test_a_real_checkpoint_with_adam_state_still_loads():
    torch.manual_seed(0)
    model = build_model("ResNet18", len(HAGRID_TARGETS), image_size=32)
    optimizer = torch.optim.Adam(model.parameters())
    model(torch.rand(2, 3, 32, 32))["gesture"].sum().backward()
    optimizer.step()
    checkpoint = {"state_dict": model.state_dict(), "optimizer_state_dict": optimizer.state_dict()}
    data = to_bytes(checkpoint)
    assert len(data) > HARMLESS_BYTES  # so the architectures' limits, not the shortcut, let it through
    loaded = from_bytes(data, "real.pth")
    assert all(torch.equal(loaded["state_dict"][k], v) for k, v in model.state_dict().items())


def test_a_torn_zip_is_still_a_torn_checkpoint():
    data = to_bytes({"state_dict": {"w": torch.zeros(4)}})
    with pytest.raises(CheckpointError, match=r"^torn\.pth is not a readable checkpoint \(torn or corrupt"):
        from_bytes(data[: len(data) // 2], "torn.pth")
