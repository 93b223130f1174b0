"""Decoding a dataset frame, or refusing it: unreadable files and decompression bombs (a few KB of JPEG
that claim 20000 x 20000 pixels) are skipped and counted, never decoded."""

from __future__ import annotations

import io
import logging
from collections.abc import Callable

import torch
from PIL import Image
from torchvision.io import ImageReadMode, decode_image, read_file

from handgesture.data import sources
from handgesture.errors import DataError, StorageError

# HaGRID's frames are 1920 x 1080 (2 megapixels); anything past 64 megapixels is not a photo of a hand.
MAX_FRAME_PIXELS = 64 * 1024 * 1024


class UnreadableFrame(Exception):
    """A frame that is skipped: the message says why."""


def read_frame(path: str) -> torch.Tensor:
    """The frame at `path` (JPEG or PNG) as uint8 RGB [3, H, W]; UnreadableFrame when it cannot or must not
    be decoded. `path` is a locator (`data.sources`): a file, an ``s3://`` object or an archive member, whose
    bytes are read into memory, never to disk."""
    if sources.is_plain_locator(path):
        return _decode(path, path, lambda: read_file(path))
    data = _fetch(path)
    return _decode(io.BytesIO(data), path, lambda: torch.frombuffer(bytearray(data), dtype=torch.uint8))


def read_frame_or_skip(path: str, log: logging.Logger) -> torch.Tensor | None:
    """`read_frame`, or None for a frame that is skipped (the warning goes to `log`; the loader counts it)."""
    try:
        return read_frame(path)
    except UnreadableFrame as exc:
        log.warning("Skipping unreadable image %s", exc)
        return None


def _fetch(locator: str) -> bytes:
    """A frame's bytes from where it lives; a member or object that cannot be read is an unreadable frame."""
    try:
        return sources.read_bytes(locator)
    except (OSError, DataError, StorageError) as exc:
        raise UnreadableFrame(f"{locator}: {_first_line(exc)}") from None


def _decode(header: str | io.BytesIO, where: str, encoded: Callable[[], torch.Tensor]) -> torch.Tensor:
    """The size from the header alone, checked before any pixel is decoded; then the decode of `encoded()`
    (the file's or the fetched bytes, as a uint8 tensor)."""
    try:
        with Image.open(header) as opened:  # reads the header only: the size, before any pixel is decoded
            width, height = opened.size
    except (OSError, ValueError, Image.DecompressionBombError) as exc:
        raise UnreadableFrame(f"{where}: {_first_line(exc)}") from None
    if width * height > MAX_FRAME_PIXELS:
        raise UnreadableFrame(
            f"{where}: {width} x {height} pixels, over the limit of {MAX_FRAME_PIXELS} "
            "(a decompression bomb?)"
        )
    try:
        frame = decode_image(encoded(), mode=ImageReadMode.RGB)  # HaGRID's JPEGs, and PNGs
    except (RuntimeError, OSError, ValueError) as exc:
        raise UnreadableFrame(f"{where}: {_first_line(exc)}") from None
    return to_uint8(frame, where)


def to_uint8(frame: torch.Tensor, path: str) -> torch.Tensor:
    """8 bits per channel, as every consumer expects. A 16-bit PNG decodes to uint16 (0..65535): used as
    uint8 its values would clamp to near-white, so each is scaled to the nearest of 0..255 (x / 257)."""
    if frame.dtype == torch.uint8:
        return frame
    if frame.dtype == torch.uint16:
        return ((frame.to(torch.int32) + 128) // 257).to(torch.uint8)
    raise UnreadableFrame(f"{path}: {frame.dtype} pixels (expected 8 or 16 bits per channel)")


def _first_line(exc: Exception) -> str:
    lines = str(exc).strip().splitlines()
    return lines[-1] if lines else type(exc).__name__
