"""A crop cache: each sample's hand region, cut once from its full frame, so epochs never decode frames.

Row ``i`` holds sample ``i``'s square at the largest augmentation scale (``max_scale`` x the box's longer
side, zero-padded outside the frame, exactly ``crop_square(frame, square_crop_box(box, W, H, max_scale))``),
shrunk to ``side`` x ``side`` when larger (never enlarged: a smaller square is kept as cut, so its crops are
exact). A crop at scale ``s <= max_scale`` is the matching sub-square of that row, resized to ``image_size``.

Layout of ``<cache_dir>/crops-<key>/``: ``crops.bin`` (rows back to back: raw uint8 [3, side, side], or JPEG
at ``quality``), ``rows.npy`` (int64 [N, 5]: offset, length, frame_w, frame_h, row side; length 0 = the image
was unreadable), and ``index.json`` (written last: key, settings, sizes and sha256 of both files). The key
digests the samples, the annotation files' bytes, each image's size and mtime, and the settings, so a changed
dataset or setting lands in a new folder; a folder whose files disagree with its index is rebuilt.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import shutil
import tempfile
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset
from torchvision.io import ImageReadMode, decode_jpeg, encode_jpeg, read_file

from handgesture.data.annotations import Sample
from handgesture.data.dataset import crop_square, resize_and_pad
from handgesture.data.geometry import crop_scale, fit_size, pad_offsets, square_crop_box

log = logging.getLogger(__name__)

FORMAT_VERSION = 2
FORMATS = ("jpeg", "raw")


@dataclass(frozen=True)
class CacheSettings:
    side: int
    max_scale: float
    fmt: str
    quality: int
    version: int = FORMAT_VERSION


def _digest(samples, settings: CacheSettings, annotation_files) -> str:
    """sha256 of everything the rows depend on; image files by size + mtime (a stat, not a read)."""
    h = hashlib.sha256(json.dumps(asdict(settings), sort_keys=True).encode())
    for path in sorted(str(p) for p in annotation_files):
        h.update(f"\0ann\0{path}\0".encode())
        h.update(Path(path).read_bytes())
    stats: dict[str, tuple[int, int]] = {}
    for s in samples:
        if s.image not in stats:
            try:
                st = os.stat(s.image)
                stats[s.image] = (st.st_size, st.st_mtime_ns)
            except OSError:
                stats[s.image] = (-1, -1)
        h.update(
            json.dumps([s.image, list(s.box), s.gesture, s.leading_hand, s.user_id, stats[s.image]]).encode()
        )
    return h.hexdigest()


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 22):
            h.update(chunk)
    return h.hexdigest()


def _axis_weights(start: float, length: float, out: int, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Taps and weights of an antialiased linear resampling of ``[start, start + length)`` to ``out`` pixels.

    The same triangle filter as ``F.interpolate(mode="bilinear", antialias=True)``, but the window may start
    and end between pixels, so a sub-square of a shrunk row lands where the frame's own crop would.
    """
    scale = length / out
    support, inv = max(scale, 1.0), 1.0 / max(scale, 1.0)
    centres = start + scale * (torch.arange(out, dtype=torch.float64) + 0.5)
    # Taps stop at the window's edges, as interpolate's stop at the edges of the frame's own crop.
    lo = torch.floor(centres - support + 0.5).clamp(max(0, math.floor(start)), size)
    hi = torch.floor(centres + support + 0.5).clamp(0, min(size, math.ceil(start + length)))
    taps = lo[:, None] + torch.arange(int(2 * support) + 3, dtype=torch.float64)
    weights = (1.0 - ((taps - centres[:, None] + 0.5) * inv).abs()).clamp(min=0.0) * (taps < hi[:, None])
    weights = weights / weights.sum(1, keepdim=True).clamp(min=1e-12)
    return taps.clamp(max=size - 1).long(), weights.float()


def resample_window(square, x0: float, y0: float, side: float, fitted, image_size) -> torch.Tensor:
    """The fractional window (x0, y0, side) of a uint8 [C, S, S] square resized to ``fitted``, zero-padded."""
    rows, row_w = _axis_weights(y0, side, fitted[0], square.shape[-2])
    cols, col_w = _axis_weights(x0, side, fitted[1], square.shape[-1])
    image = (square.float()[:, rows] * row_w[None, :, :, None]).sum(2)  # [C, h, W]
    image = (image[:, :, cols] * col_w[None, None]).sum(3)  # [C, h, w]
    image = image.round_().clamp_(0, 255).to(torch.uint8)
    return F.pad(image, pad_offsets(fitted, image_size))


def _encode_group(job) -> list[tuple[bytes, int, int, int]]:
    """Rows for the boxes of one image: (bytes, frame_w, frame_h, side); empty bytes when unreadable."""
    image, boxes, settings = job
    torch.set_num_threads(1)
    try:
        frame = decode_jpeg(read_file(image), mode=ImageReadMode.RGB)
    except (RuntimeError, OSError, ValueError) as exc:
        log.warning("Cache: unreadable image %s: %s", image, str(exc).strip().splitlines()[-1:])
        return [(b"", 0, 0, 0)] * len(boxes)
    _, frame_h, frame_w = frame.shape
    rows = []
    for box in boxes:
        square = crop_square(frame, square_crop_box(box, frame_w, frame_h, settings.max_scale))
        if square.shape[-1] > settings.side:
            square = resize_and_pad(square, (settings.side, settings.side))
        if settings.fmt == "jpeg":
            data = encode_jpeg(square, quality=settings.quality).numpy().tobytes()
        else:
            data = square.contiguous().numpy().tobytes()
        rows.append((data, frame_w, frame_h, square.shape[-1]))
    return rows


def _write_rows(samples, settings: CacheSettings, folder: Path, workers: int) -> int:
    """Write crops.bin and rows.npy into ``folder``; returns the number of unreadable rows."""
    groups: dict[str, list[int]] = {}
    for i, s in enumerate(samples):  # decode each frame once, however many boxes it holds
        groups.setdefault(s.image, []).append(i)
    jobs = [(image, [samples[i].box for i in rows], settings) for image, rows in groups.items()]
    table = np.zeros((len(samples), 5), dtype=np.int64)
    offset, unreadable = 0, 0
    pool = ProcessPoolExecutor(workers) if workers > 0 else None
    try:
        results = pool.map(_encode_group, jobs, chunksize=16) if pool else map(_encode_group, jobs)
        with open(folder / "crops.bin", "wb") as out:
            for rows, encoded in zip(groups.values(), results, strict=True):
                for i, (data, frame_w, frame_h, side) in zip(rows, encoded, strict=True):
                    out.write(data)
                    table[i] = (offset, len(data), frame_w, frame_h, side)
                    offset += len(data)
                    unreadable += not data
            out.flush()
            os.fsync(out.fileno())
    finally:
        if pool:
            pool.shutdown()
    np.save(folder / "rows.npy", table)
    return unreadable


def _file_entry(path: Path) -> dict:
    return {"size": path.stat().st_size, "sha256": _sha256(path)}


def _check(folder: Path, key: str) -> dict | None:
    """The folder's index when it is complete and matches ``key``; None (and why, logged) otherwise."""
    try:
        index = json.loads((folder / "index.json").read_text())
        for name in ("crops.bin", "rows.npy"):
            expected, path = index["files"][name], folder / name
            if path.stat().st_size != expected["size"] or _sha256(path) != expected["sha256"]:
                raise ValueError(f"{name} does not match the index (truncated or modified)")
        if index["key"] != key:
            raise ValueError("index key does not match the folder's dataset and settings (stale)")
        return index
    except (OSError, ValueError, KeyError, TypeError) as exc:
        if folder.exists():
            log.warning("Crop cache %s is unusable (%s); rebuilding it", folder, exc)
        return None


@dataclass
class CropCache:
    folder: Path
    samples: list[Sample]
    image_size: tuple[int, int]
    settings: CacheSettings
    rows: np.ndarray  # int64 [N, 5]: offset, length, frame_w, frame_h, row side
    unreadable: int

    def dataset(self, samples: list[Sample] | None = None, train: bool = False) -> CachedCropDataset:
        return CachedCropDataset(self, self.samples if samples is None else samples, train)


def prepare_cache(
    samples,
    image_size,
    cache_dir,
    *,
    max_scale: float = 2.0,
    side: int | None = None,
    fmt: str = "raw",
    quality: int = 95,
    workers: int = 0,
    annotation_files=(),
) -> CropCache:
    """Build (once) or reuse the crop cache of ``samples`` under ``cache_dir``; see the module docstring.

    ``side`` defaults to ``2 * max(image_size)``, so a crop at scale 1 still has at least ``image_size``
    cached pixels. ``workers`` > 0 decodes frames in that many processes.
    """
    samples = list(samples)
    size = (int(image_size[0]), int(image_size[1]))
    if fmt not in FORMATS or max_scale < 1.0 or min(size) <= 0:
        raise ValueError(
            f"need fmt in {FORMATS}, max_scale >= 1, image_size > 0; got {fmt}, {max_scale}, {size}"
        )
    settings = CacheSettings(int(side or 2 * max(size)), float(max_scale), fmt, int(quality))
    key = _digest(samples, settings, annotation_files)
    root = Path(cache_dir)
    folder = root / f"crops-{key[:24]}"
    index = _check(folder, key)
    if index is None:
        root.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}-", dir=root))
        try:
            log.info("Preparing crop cache of %d samples in %s", len(samples), folder)
            unreadable = _write_rows(samples, settings, tmp, workers)
            index = {
                "key": key,
                "settings": asdict(settings),
                "count": len(samples),
                "unreadable": unreadable,
            }
            index["files"] = {name: _file_entry(tmp / name) for name in ("crops.bin", "rows.npy")}
            (tmp / "index.json").write_text(json.dumps(index, indent=1))
            shutil.rmtree(folder, ignore_errors=True)
            os.replace(tmp, folder)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        index = _check(folder, key)
        if index is None:
            raise RuntimeError(f"crop cache {folder} failed its own check right after being written")
    if index["unreadable"]:
        log.warning(
            "Crop cache %s: %d samples were unreadable and will be skipped", folder, index["unreadable"]
        )
    rows = np.load(folder / "rows.npy")
    return CropCache(folder, samples, size, settings, rows, int(index["unreadable"]))


class CachedCropDataset(Dataset):
    """``HandCropDataset``'s contract (int key: scale 1; ``(index, seed)``: ``crop_scale(seed, train)``),
    read from a ``CropCache``; ``samples`` must be samples of the cache (a split of them, say)."""

    def __init__(self, cache: CropCache, samples: list[Sample], train: bool):
        row_of = {s: i for i, s in enumerate(cache.samples)}
        missing = [s.image for s in samples if s not in row_of]
        if missing:
            raise ValueError(
                f"{len(missing)} samples are not in crop cache {cache.folder}, e.g. {missing[0]}"
            )
        self.samples, self.train = list(samples), train
        self.rows = cache.rows[[row_of[s] for s in samples]] if samples else cache.rows[:0]
        self.image_size, self.settings = cache.image_size, cache.settings
        self.path = str(cache.folder / "crops.bin")
        self._fd: tuple[int, int] | None = None  # (pid, fd): opened lazily, once per worker process

    def __len__(self) -> int:
        return len(self.samples)

    def __getstate__(self):
        return {**self.__dict__, "_fd": None}

    def _read(self, offset: int, length: int) -> bytes:
        if self._fd is None or self._fd[0] != os.getpid():
            self._fd = (os.getpid(), os.open(self.path, os.O_RDONLY))
        return os.pread(self._fd[1], length, offset)

    def _window(self, box, frame_w: int, frame_h: int, row_side: int, scale: float):
        """(x0, y0, side, frame_side) of the frame square at ``scale`` in the row's (fractional) pixels."""
        if scale > self.settings.max_scale:
            raise ValueError(f"crop scale {scale} exceeds the cache's max_scale {self.settings.max_scale}")
        big = square_crop_box(box, frame_w, frame_h, self.settings.max_scale)
        crop = square_crop_box(box, frame_w, frame_h, scale)
        factor = row_side / (big[2] - big[0])
        side = crop[2] - crop[0]
        return (crop[0] - big[0]) * factor, (crop[1] - big[1]) * factor, side * factor, side

    def __getitem__(self, key):
        if isinstance(key, tuple):
            index, seed = key
            scale = crop_scale(seed, self.train)
        else:
            index, scale = int(key), 1.0
        offset, length, frame_w, frame_h, side = (int(v) for v in self.rows[index])
        if length == 0:
            return None  # unreadable when the cache was prepared (counted in CropCache.unreadable)
        data = torch.frombuffer(bytearray(self._read(offset, length)), dtype=torch.uint8)
        square = (
            decode_jpeg(data, mode=ImageReadMode.RGB)
            if self.settings.fmt == "jpeg"
            else data.view(3, side, side)
        )
        sample = self.samples[index]
        x0, y0, sub, frame_side = self._window(sample.box, frame_w, frame_h, side, scale)
        if sub == frame_side:
            x0, y0, sub = round(x0), round(y0), round(sub)  # a row kept as cut: integers, same code, exact
            image = resize_and_pad(square[:, y0 : y0 + sub, x0 : x0 + sub], self.image_size)
        else:
            image = resample_window(
                square, x0, y0, sub, fit_size(frame_side, self.image_size), self.image_size
            )
        return {"image": image, "gesture": sample.gesture, "leading_hand": sample.leading_hand}
