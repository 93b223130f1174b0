"""Cutting a crop cache's rows out of full frames: each frame is decoded once (torchvision.io, libjpeg-turbo),
however many hands it holds, optionally in several processes."""

from __future__ import annotations

import logging
import os
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import torch
from torchvision.io import encode_jpeg

from handgesture.data.dataset import crop_square, resize_and_pad
from handgesture.data.frames import UnreadableFrame, read_frame
from handgesture.data.geometry import square_crop_box
from handgesture.errors import StorageError
from handgesture.storage.local import DISK_FULL

log = logging.getLogger(__name__)


def _encode_square(square: torch.Tensor, settings) -> bytes:
    """A [C, S, S] row as stored: JPEG, or raw bytes interleaved [S, S, C]."""
    if settings.fmt == "jpeg":
        return encode_jpeg(square, quality=settings.quality).numpy().tobytes()
    return square.permute(1, 2, 0).contiguous().numpy().tobytes()


def _encode_group(job) -> list[tuple[bytes, int, int, int]]:
    """Rows for the boxes of one image: (bytes, frame_w, frame_h, side); empty bytes when unreadable."""
    image, boxes, settings = job
    try:
        frame = read_frame(image)
    except UnreadableFrame as exc:
        log.warning("Cache: skipping unreadable image %s", exc)
        return [(b"", 0, 0, 0)] * len(boxes)
    _, frame_h, frame_w = frame.shape
    rows = []
    for box in boxes:
        square = crop_square(frame, square_crop_box(box, frame_w, frame_h, settings.max_scale))
        if square.shape[-1] > settings.side:
            square = resize_and_pad(square, (settings.side, settings.side))
        rows.append((_encode_square(square, settings), frame_w, frame_h, square.shape[-1]))
    return rows


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
    table = np.zeros((len(samples), 5), dtype=np.int64)
    pool = ProcessPoolExecutor(workers, initializer=_one_thread) if workers > 0 else None
    try:
        results = pool.map(_encode_group, jobs, chunksize=16) if pool else map(_encode_group, jobs)
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
    return int((table[:, 1] == 0).sum())  # length 0: the image was unreadable


def _write_crops(path: Path, groups, results, table: np.ndarray) -> None:
    """Rows back to back, in sample order of each image group; `table` gets each row's place."""
    offset = 0
    with open(path, "wb") as out:
        for rows, encoded in zip(groups, results, strict=True):
            for i, (data, frame_w, frame_h, side) in zip(rows, encoded, strict=True):
                out.write(data)
                table[i] = (offset, len(data), frame_w, frame_h, side)
                offset += len(data)
        out.flush()
        os.fsync(out.fileno())
