"""Frames that must not be decoded are skipped and counted: a decompression bomb costs a header read."""

import io
import struct
import zlib

import numpy as np
import pytest
import torch
from PIL import Image

from handgesture.data.annotations import Sample
from handgesture.data.cache import prepare_cache
from handgesture.data.dataset import HandCropDataset
from handgesture.data.frames import UnreadableFrame, read_frame


def bomb(path, side: int = 20000) -> None:
    """A 2.8 KB-class JPEG whose header claims side x side pixels (the SOF0 marker's height and width)."""
    buffer = io.BytesIO()
    Image.new("RGB", (16, 16), (200, 30, 30)).save(buffer, format="JPEG")
    data = bytearray(buffer.getvalue())
    sof = data.index(b"\xff\xc0")
    data[sof + 5 : sof + 9] = struct.pack(">HH", side, side)
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("side", [20000, 10000])  # past PIL's own limit, and past ours only
def test_a_decompression_bomb_is_refused_before_decoding(tmp_path, side):
    bomb(tmp_path / "bomb.jpg", side)
    assert (tmp_path / "bomb.jpg").stat().st_size < 4096
    with pytest.raises(UnreadableFrame, match="decompression bomb"):
        read_frame(str(tmp_path / "bomb.jpg"))


def test_bombs_are_skipped_and_counted_by_both_data_paths(tmp_path):
    (tmp_path / "call").mkdir()
    bomb(tmp_path / "call" / "bomb.jpg")
    Image.new("RGB", (64, 48)).save(tmp_path / "call" / "fine.jpg")
    samples = [
        Sample(str(tmp_path / "call" / name), (0.1, 0.1, 0.5, 0.5), 0, 0, "u")
        for name in ("bomb.jpg", "fine.jpg")
    ]
    frames = HandCropDataset(samples, (16, 16), train=False)
    assert frames[0] is None and frames[1]["image"].shape == (3, 16, 16)
    cache = prepare_cache(samples, (16, 16), tmp_path / "cache")
    assert cache.unreadable == 1 and cache.dataset(train=False)[0] is None


def _png_rgb16(path, pixels) -> None:
    """A 16-bit RGB PNG (PIL writes 16-bit only as one grey channel): [H, W, 3] uint16, big-endian rows."""
    height, width, _ = pixels.shape
    raw = b"".join(b"\0" + row.astype(">u2").tobytes() for row in pixels)

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 16, 2, 0, 0, 0)  # 16 bits, truecolour
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )


@pytest.mark.parametrize("channels", [1, 3], ids=["grey-I;16", "rgb-16"])
def test_a_16_bit_png_decodes_within_one_level_of_its_8_bit_equivalent(tmp_path, channels):
    rng = np.random.default_rng(0)
    eight = rng.integers(0, 256, (24, 32, channels), dtype=np.uint8)
    sixteen = np.clip(eight.astype(np.int64) * 257 + rng.integers(-128, 129, eight.shape), 0, 65535)
    path = tmp_path / "frame16.png"
    if channels == 1:
        Image.fromarray(sixteen[..., 0].astype(np.uint16)).save(path)
        assert Image.open(path).mode == "I;16"
    else:
        _png_rgb16(path, sixteen.astype(np.uint16))
    frame = read_frame(str(path))
    assert frame.dtype == torch.uint8 and tuple(frame.shape) == (3, 24, 32)
    expected = torch.from_numpy(np.broadcast_to(eight, (24, 32, 3)).copy()).permute(2, 0, 1)
    assert (frame.int() - expected.int()).abs().max() <= 1


def test_16_bit_frames_crop_like_their_8_bit_twins_in_both_data_paths(tmp_path):
    """Training's frame path and the crop cache (which predict shares read_frame with) see the same pixels."""
    (tmp_path / "call").mkdir()
    eight = np.random.default_rng(1).integers(0, 256, (48, 64, 3), dtype=np.uint8)
    Image.fromarray(eight).save(tmp_path / "call" / "eight.png")
    _png_rgb16(tmp_path / "call" / "sixteen.png", eight.astype(np.uint16) * 257)
    samples = [
        Sample(str(tmp_path / "call" / name), (0.2, 0.2, 0.5, 0.5), 0, 0, "u")
        for name in ("eight.png", "sixteen.png")
    ]
    frames = HandCropDataset(samples, (16, 16), train=False)
    assert torch.equal(frames[0]["image"], frames[1]["image"])
    cached = prepare_cache(samples, (16, 16), tmp_path / "cache", fmt="raw").dataset(train=False)
    assert torch.equal(cached[0]["image"], cached[1]["image"])
