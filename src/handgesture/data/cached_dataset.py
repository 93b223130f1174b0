"""Crops read from a crop cache: ``HandCropDataset``'s contract without decoding a frame.

A crop at scale ``s <= max_scale`` is the matching sub-square of the sample's row at the smallest level that
holds it: a window that may start and end between the row's pixels when the row was shrunk. PIL resamples
such a fractional window directly (``resize(box=...)``, the same antialiased triangle filter as
``F.interpolate(antialias=True)``), in under a millisecond, so the crop lands where the full-frame path's
would, up to resampling.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch.utils.data import Dataset
from torchvision.io import ImageReadMode, decode_jpeg

from handgesture.data.annotations import Sample
from handgesture.data.cache_layout import CropsReader
from handgesture.data.full_frames import frame_item
from handgesture.data.geometry import crop_scale, fit_size, level_of, pad_offsets, square_crop_box


def crop_window(square: Image.Image, x0: float, y0: float, side: float, fitted) -> torch.Tensor:
    """The window (x0, y0, side) of ``square`` (fractional row pixels) resized to ``fitted``, as [C, h, w].

    The window is first cut to whole pixels, so the filter's taps stop at its edges, as they do for the
    full-frame path, which resizes the crop alone.
    """
    left, top = math.floor(x0), math.floor(y0)
    right, bottom = math.ceil(x0 + side), math.ceil(y0 + side)
    window = square.crop((left, top, right, bottom))
    box = (x0 - left, y0 - top, x0 - left + side, y0 - top + side)
    resized = window.resize((fitted[1], fitted[0]), Image.Resampling.BILINEAR, box=box)
    return torch.from_numpy(np.array(resized)).permute(2, 0, 1)


def rows_of(cache, samples: list[Sample]):
    """The cache's rows for ``samples``, in their order. A split that is its whole cache in the cache's own
    order (each of v2's splits has its own cache) takes the rows as they are, without looking up each of
    its samples (2 s for v2's 1.3 M: hashing them all)."""
    if samples == cache.samples:
        return cache.rows
    row_of = {s: i for i, s in enumerate(cache.samples)}
    missing = [s.image for s in samples if s not in row_of]
    if missing:
        raise ValueError(f"{len(missing)} samples are not in crop cache {cache.folder}, e.g. {missing[0]}")
    return cache.rows[[row_of[s] for s in samples]] if samples else cache.rows[:0]


class CachedCropDataset(Dataset):
    """``HandCropDataset``'s contract (int key: scale 1; ``(index, seed)``: ``crop_scale(seed, train)``),
    read from a ``CropCache``; ``samples`` must be samples of the cache (a split of them, say)."""

    def __init__(self, cache, samples: list[Sample], train: bool):
        self.samples, self.train = list(samples), train
        self.rows = rows_of(cache, self.samples)
        self.image_size, self.settings = cache.image_size, cache.settings
        self.scales = cache.settings.scales
        paths = [cache.folder / name for name in cache.crops]  # one crops.bin, or a sharded cache's parts
        self.crops = CropsReader([str(p) for p in paths], [p.stat().st_size for p in paths])

    def __len__(self) -> int:
        return len(self.samples)

    def _read(self, offset: int, length: int) -> bytes:
        return self.crops.read(offset, length)

    def _square(self, offset: int, length: int, side: int) -> Image.Image:
        data = self._read(offset, length)
        if self.settings.fmt == "raw":
            return Image.frombuffer("RGB", (side, side), data, "raw", "RGB", 0, 1)
        decoded = decode_jpeg(torch.frombuffer(bytearray(data), dtype=torch.uint8), mode=ImageReadMode.RGB)
        return Image.fromarray(decoded.permute(1, 2, 0).numpy())

    def _window(self, box, frame_w: int, frame_h: int, row_side: int, scale: float, row_scale: float):
        """(x0, y0, side, frame_side) of the frame square at ``scale`` in the (fractional) pixels of the row
        that holds the square at ``row_scale``."""
        big = square_crop_box(box, frame_w, frame_h, row_scale)
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
        row = self.rows[index, level_of(scale, self.scales)]
        offset, length, frame_w, frame_h, side, held = (int(v) for v in row)
        if length == 0:
            return None  # unreadable when the cache was prepared (counted in CropCache.unreadable)
        sample = self.samples[index]
        x0, y0, sub, frame_side = self._window(sample.box, frame_w, frame_h, side, scale, self.scales[held])
        fitted = fit_size(frame_side, self.image_size)
        image = crop_window(self._square(offset, length, side), x0, y0, sub, fitted)
        if fitted != self.image_size:
            image = F.pad(image, pad_offsets(fitted, self.image_size))
        return {
            "image": image,
            "gesture": sample.gesture,
            "leading_hand": sample.leading_hand,
            "index": index,
        }


class CachedFrameDataset(CachedCropDataset):
    """``FullFrameDataset``'s contract read from a frame cache: each row is the frame already letterboxed
    (`full_frames.letterbox`), so an item is one small JPEG decode (or a raw copy), never a full-HD one."""

    def __getitem__(self, key):
        index = key[0] if isinstance(key, tuple) else int(key)  # no random augmentation: the seed is unused
        offset, length = (int(v) for v in self.rows[index, 0, :2])
        if length == 0:
            return None  # unreadable when the cache was prepared (counted in CropCache.unreadable)
        return frame_item(self._frame(offset, length), self.samples[index], index)

    def _frame(self, offset: int, length: int) -> torch.Tensor:
        data = torch.frombuffer(bytearray(self._read(offset, length)), dtype=torch.uint8)
        if self.settings.fmt == "jpeg":
            return decode_jpeg(data, mode=ImageReadMode.RGB)
        height, width = self.settings.frame_size
        return data.view(height, width, 3).permute(2, 0, 1)
