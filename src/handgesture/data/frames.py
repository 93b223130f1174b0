"""Decoding a dataset frame, or refusing it: unreadable files and decompression bombs (a few KB of JPEG
that claim 20000 x 20000 pixels) are skipped and counted, never decoded."""

from __future__ import annotations

import io

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
    if not sources.is_plain_locator(path):
        return _decode_bytes(_fetch(path), path)
    try:
        with Image.open(path) as header:  # reads the header only: the size, before any pixel is decoded
            width, height = header.size
    except (OSError, ValueError, Image.DecompressionBombError) as exc:
        raise UnreadableFrame(f"{path}: {_first_line(exc)}") from None
    if width * height > MAX_FRAME_PIXELS:
        raise UnreadableFrame(
            f"{path}: {width} x {height} pixels, over the limit of {MAX_FRAME_PIXELS} (a decompression bomb?)"
        )
    try:
        frame = decode_image(read_file(path), mode=ImageReadMode.RGB)  # HaGRID's JPEGs, and PNGs
    except (RuntimeError, OSError, ValueError) as exc:
        raise UnreadableFrame(f"{path}: {_first_line(exc)}") from None
    return to_uint8(frame, path)


def _fetch(locator: str) -> bytes:
    """A frame's bytes from where it lives; a member or object that cannot be read is an unreadable frame."""
    try:
        return sources.read_bytes(locator)
    except (OSError, DataError, StorageError) as exc:
        raise UnreadableFrame(f"{locator}: {_first_line(exc)}") from None


def _decode_bytes(data: bytes, where: str) -> torch.Tensor:
    """`read_frame` of bytes in memory: the same size check before decoding, the same decoder."""
    try:
        with Image.open(io.BytesIO(data)) as header:
            width, height = header.size
    except (OSError, ValueError, Image.DecompressionBombError) as exc:
        raise UnreadableFrame(f"{where}: {_first_line(exc)}") from None
    if width * height > MAX_FRAME_PIXELS:
        raise UnreadableFrame(
            f"{where}: {width} x {height} pixels, over the limit of {MAX_FRAME_PIXELS} "
            "(a decompression bomb?)"
        )
    try:
        frame = decode_image(torch.frombuffer(bytearray(data), dtype=torch.uint8), mode=ImageReadMode.RGB)
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
