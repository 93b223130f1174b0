"""Cutting a crop cache's rows out of full frames: each frame is decoded once (torchvision.io, libjpeg-turbo),
however many hands it holds, optionally in several processes. A frame cache's row is the frame letterboxed."""

from __future__ import annotations

import logging
import os
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import torch
from torchvision.io import encode_jpeg

from handgesture.data import sources
from handgesture.data.dataset import crop_square, resize_and_pad
from handgesture.data.frames import UnreadableFrame, read_frame
from handgesture.data.full_frames import letterbox
from handgesture.data.geometry import square_crop_box
from handgesture.errors import StorageError
from handgesture.storage.local import DISK_FULL

log = logging.getLogger(__name__)


def _encode_square(square: torch.Tensor, settings) -> bytes:
    """A [C, H, W] row as stored: JPEG, or raw bytes interleaved [H, W, C]."""
    if settings.fmt == "jpeg":
        return encode_jpeg(square, quality=settings.quality).numpy().tobytes()
    return square.permute(1, 2, 0).contiguous().numpy().tobytes()


Row = tuple[bytes, int, int, int]  # (bytes, frame_w, frame_h, side); empty bytes: the image was unreadable
# A box's entry at one level: its row, or the index of the outer level whose row it shares.
Level = Row | int


def _encode_group(job) -> list[list[Level]]:
    """Each box's levels (innermost first), for the boxes of one image."""
    image, boxes, settings = job
    try:
        frame = read_frame(image)
    except UnreadableFrame as exc:
        log.warning("Cache: skipping unreadable image %s", exc)
        return [[(b"", 0, 0, 0)] * settings.levels for _ in boxes]
    if settings.full_frame:  # one sample per image: its one row is the frame, letterboxed
        return [[_frame_row(frame, settings)] for _ in boxes]
    return [_box_levels(frame, box, settings) for box in boxes]


def _frame_row(frame: torch.Tensor, settings) -> Row:
    """A frame cache's row: the whole frame as the model sees it (`full_frames.letterbox`)."""
    _, frame_h, frame_w = frame.shape
    return _encode_square(letterbox(frame, settings.frame_size), settings), frame_w, frame_h, settings.side


def _box_levels(frame: torch.Tensor, box, settings) -> list[Level]:
    """Inside a level kept as cut (not shrunk: a small hand), an inner level would hold no more detail, only
    more bytes: it shares the outer level's row instead."""
    _, frame_h, frame_w = frame.shape
    levels: list[Level] = [0] * settings.levels
    kept_as_cut = None  # the innermost level stored so far, once one was kept as cut
    for level in reversed(range(settings.levels)):
        if kept_as_cut is not None:
            levels[level] = kept_as_cut
            continue
        square = crop_square(frame, square_crop_box(box, frame_w, frame_h, settings.scales[level]))
        if square.shape[-1] > settings.side:
            square = resize_and_pad(square, (settings.side, settings.side))
        else:
            kept_as_cut = level
        levels[level] = (_encode_square(square, settings), frame_w, frame_h, square.shape[-1])
    return levels


def _one_thread() -> None:
    """A pool worker's torch uses one thread: the workers are the parallelism. (Only in the workers: set in
    the calling process, it would stay set and slow down, and change the bits of, the training after it.)"""
    torch.set_num_threads(1)


def write_rows(samples, settings, folder: Path, workers: int) -> int:
    """Write crops.bin and rows.npy into ``folder``; returns the number of unreadable rows."""
    groups: dict[str, list[int]] = {}
    for i, s in enumerate(samples):  # decode each frame once, however many boxes it holds
        groups.setdefault(s.image, []).append(i)
    jobs = [(image, [samples[i].box for i in rows], settings) for image, rows in groups.items()]
    table = np.zeros((len(samples), settings.levels, 6), dtype=np.int64)
    pool = ProcessPoolExecutor(workers, initializer=_one_thread) if workers > 0 else None
    try:
        results = pool.map(_encode_group, jobs, chunksize=16) if pool else map(_encode_group, jobs)
        with sources.prefetched(groups if pool is None else ()):  # S3 and archive reads ahead of the decoder
            _write_crops(folder / "crops.bin", groups.values(), results, table)
    except OSError as exc:
        if exc.errno in DISK_FULL:
            raise StorageError(
                f"cannot write the crop cache {folder}: {exc.strerror} (the disk is full)"
            ) from exc
        raise
    finally:
        if pool:
            pool.shutdown()
    np.save(folder / "rows.npy", table)
    return int((table[:, 0, 1] == 0).sum())  # length 0: the image was unreadable


def _write_crops(path: Path, groups, results, table: np.ndarray) -> None:
    """Rows back to back, in sample order of each image group; `table` gets each row's place."""
    offset = 0
    with open(path, "wb") as out:
        for rows, encoded in zip(groups, results, strict=True):
            for i, levels in zip(rows, encoded, strict=True):
                for level in reversed(range(len(levels))):  # outermost first: a shared row is placed
                    entry = levels[level]
                    if isinstance(entry, int):
                        table[i, level] = table[i, entry]
                        continue
                    data, frame_w, frame_h, side = entry
                    out.write(data)
                    table[i, level] = (offset, len(data), frame_w, frame_h, side, level)
                    offset += len(data)
        out.flush()
        os.fsync(out.fileno())
