"""Pure crop geometry: square hand crops around a box, clipped to the frame, fitted to the model input; and
the whole frame letterboxed to it (full-frame classification).

Boxes are HaGRID's normalised (x, y, w, h) with a top-left origin; pixel boxes are (x0, y0, x1, y1) with
exclusive ends, so a box's side is ``x1 - x0``.
"""

from __future__ import annotations

import math
import random

Box = tuple[int, int, int, int]


def _round_half_up(value: float) -> int:
    # Python's round() is banker's rounding; half-up keeps a centred crop's offset stable as it moves.
    return math.floor(value + 0.5)


def _check_frame(frame_w: int, frame_h: int) -> None:
    if frame_w <= 0 or frame_h <= 0:
        raise ValueError(f"frame size must be positive, got frame_w={frame_w}, frame_h={frame_h}")


def square_crop_box(box_norm, frame_w: int, frame_h: int, scale: float) -> Box:
    """Pixel square (x0, y0, x1, y1) centred on the box, side ``round(max(w, h) * scale)`` (at least 1).

    The square may extend past the frame; ``clip_to_frame`` says which part is inside it.
    """
    _check_frame(frame_w, frame_h)
    if not scale > 0:
        raise ValueError(f"crop scale must be positive, got {scale}")
    x, y, w, h = box_norm
    side = max(1, round(max(w * frame_w, h * frame_h) * scale))
    x0 = _round_half_up((x + w / 2) * frame_w - side / 2)
    y0 = _round_half_up((y + h / 2) * frame_h - side / 2)
    return x0, y0, x0 + side, y0 + side


def clip_to_frame(crop: Box, frame_w: int, frame_h: int) -> tuple[Box, tuple[int, int]]:
    """The in-frame part of ``crop`` as a frame box, and where it lands (dx, dy) in the crop's canvas.

    Copy ``frame[sy0:sy1, sx0:sx1]`` to ``canvas[dy:dy + (sy1 - sy0), dx:dx + (sx1 - sx0)]``; the rest of the
    canvas stays zero. A crop wholly outside the frame gives an empty box ((0, 0, 0, 0), (0, 0)).
    """
    _check_frame(frame_w, frame_h)
    x0, y0, x1, y1 = crop
    sx0, sy0 = max(x0, 0), max(y0, 0)
    sx1, sy1 = min(x1, frame_w), min(y1, frame_h)
    if sx1 <= sx0 or sy1 <= sy0:
        return (0, 0, 0, 0), (0, 0)
    return (sx0, sy0, sx1, sy1), (sx0 - x0, sy0 - y0)


def fit_size(side: int, image_size: tuple[int, int]) -> tuple[int, int]:
    """(h, w) a ``side`` x ``side`` square is resized to so it fits ``image_size`` (H, W), aspect kept."""
    height, width = image_size
    if side <= 0 or height <= 0 or width <= 0:
        raise ValueError(f"side and image_size must be positive, got side={side}, image_size={image_size}")
    factor = min(height / side, width / side)
    fitted = max(1, min(height, width, round(side * factor)))
    return fitted, fitted


def pad_offsets(fitted: tuple[int, int], image_size: tuple[int, int]) -> tuple[int, int, int, int]:
    """(left, right, top, bottom) padding that centres a ``fitted`` (h, w) image in ``image_size``."""
    (h, w), (height, width) = fitted, image_size
    if h > height or w > width:
        raise ValueError(f"fitted size {fitted} is larger than image_size {image_size}")
    top, left = (height - h) // 2, (width - w) // 2
    return left, width - w - left, top, height - h - top


def letterbox_size(frame_w: int, frame_h: int, image_size: tuple[int, int]) -> tuple[int, int]:
    """(h, w) a whole frame is resized to so that it fits ``image_size`` (H, W), aspect kept: its longest side
    meets the size, as HaGRID v2's ``LongestMaxSize`` does for a square size."""
    _check_frame(frame_w, frame_h)
    height, width = image_size
    if height <= 0 or width <= 0:
        raise ValueError(f"image_size must be two positive ints (H, W), got {image_size}")
    factor = min(height / frame_h, width / frame_w)
    return max(1, min(height, round(frame_h * factor))), max(1, min(width, round(frame_w * factor)))


MAX_CROP_SCALE = 2.0  # crop caches hold each hand's square up to this scale


def level_scales(max_scale: float, levels: int) -> list[float]:
    """The outer scales of a crop cache's concentric levels: ``levels`` equal ratios from 1 to ``max_scale``.

    Level ``i`` serves crop scales up to its own (and above the one before). Two levels of side
    ``s * sqrt(2)`` hold as many pixels as one of side ``2 * s``, but a crop reads and resamples half as many.
    """
    if levels < 1 or max_scale < 1.0:
        raise ValueError(f"need levels >= 1 and max_scale >= 1, got levels={levels}, max_scale={max_scale}")
    scales = [max_scale ** ((i + 1) / levels) for i in range(levels)]
    scales[-1] = max_scale  # exactly, not a rounded power
    return scales


def level_of(scale: float, scales: list[float]) -> int:
    """The smallest level whose square holds a crop at ``scale``."""
    for i, outer in enumerate(scales):
        if scale <= outer:
            return i
    raise ValueError(f"crop scale {scale} exceeds the cache's largest scale {scales[-1]}")


def crop_scale(rng_seed: int, train: bool) -> float:
    """Crop scale: 1.0 for evaluation; for training uniform in [1, MAX_CROP_SCALE), fixed by the seed."""
    if not train:
        return 1.0
    return 1.0 + (MAX_CROP_SCALE - 1.0) * random.Random(rng_seed).random()
