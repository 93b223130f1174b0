"""Full-frame classification data (`model.full_frame=true`, HaGRID v2's classifiers): one sample per image,
labelled by v2's rule, the whole frame letterboxed as v2 does it.

v2's preprocessing is ``LongestMaxSize(size)`` then ``PadIfNeeded(size, size, value=144)``, centred; its
mean/std normalisation happens inside our full-frame models (`handgesture.full_frame`), so the data side
yields uint8 [3, H, W] frames, as the crop datasets yield uint8 crops. With a frame cache
(`handgesture.data.cache`) the letterboxed frame is stored once and epochs read it
(`cached_dataset.CachedFrameDataset`).
"""

from __future__ import annotations

import logging
import operator
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from handgesture.data.frames import read_frame_or_skip
from handgesture.data.geometry import letterbox_size, pad_offsets
from handgesture.full_frame import V2_PAD_VALUE
from handgesture.labels import NO_GESTURE

if TYPE_CHECKING:
    from handgesture.data.annotations import Sample

log = logging.getLogger(__name__)

WHOLE_FRAME = (0.0, 0.0, 1.0, 1.0)  # a full-frame sample's box: the frame itself


def full_frame_label(labels, folder: str) -> str | None:
    """v2's label of a whole image: `no_gesture` in the no_gesture folder, else its first label that is not
    `no_gesture`; None when there is none (v2 drops such an image: nobody in it makes a gesture)."""
    if folder == NO_GESTURE:
        return NO_GESTURE
    return next((label for label in labels if label != NO_GESTURE), None)


def resize_frame(frame: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """A uint8 [C, H, W] frame resized to ``size`` (h, w), antialiased: a full-HD frame shrunk 8x without
    it aliases fine texture into the 224 px input."""
    if tuple(frame.shape[-2:]) == tuple(size):
        return frame
    resized = F.interpolate(frame[None].float(), size=size, mode="bilinear", antialias=True)
    return resized[0].round_().clamp_(0, 255).to(torch.uint8)


def letterbox(frame: torch.Tensor, image_size: tuple[int, int]) -> torch.Tensor:
    """The whole uint8 [C, H, W] frame as the model sees it: longest side to ``image_size``, aspect kept,
    centred on v2's grey (144); exactly ``image_size``."""
    _, frame_h, frame_w = frame.shape
    fitted = letterbox_size(frame_w, frame_h, image_size)
    return F.pad(resize_frame(frame, fitted), pad_offsets(fitted, image_size), value=V2_PAD_VALUE)


def frame_item(image: torch.Tensor, sample: Sample, index: int) -> dict:
    """A dataset item: the crop datasets' keys, so loaders, the engine and evaluation read both alike."""
    return {"image": image, "gesture": sample.gesture, "leading_hand": sample.leading_hand, "index": index}


class FullFrameDataset(Dataset):
    """Each sample's whole frame, letterboxed to ``image_size``, decoded from its JPEG on every read (what
    `dataset.cache_dir=null` trains on). Keys are ints or the sampler's ``(index, seed)``: v2 applies no
    random augmentation, so the seed changes nothing."""

    def __init__(self, samples: list[Sample], image_size: tuple[int, int]):
        height, width = image_size
        if height <= 0 or width <= 0:
            raise ValueError(f"image_size must be two positive ints (H, W), got {image_size}")
        self.samples = list(samples)
        self.image_size = (int(height), int(width))

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, key):
        index = key[0] if isinstance(key, tuple) else operator.index(key)
        sample = self.samples[index]
        frame = read_frame_or_skip(sample.image, log)
        if frame is None:
            return None
        return frame_item(letterbox(frame, self.image_size), sample, index)
