"""Frames that must not be decoded are skipped and counted: a decompression bomb costs a header read."""

import io
import struct

import pytest
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
