"""Hand-crop dataset, a resumable epoch sampler, and a loader that skips unreadable images.

Randomness lives in the sampler, not the workers: each item is keyed by ``(index, sample_seed)``, so a
batch is the same whatever the number of workers, and a resumed epoch continues exactly where it stopped.
"""

from __future__ import annotations

import logging
import operator

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset, Sampler

from handgesture.data.annotations import Sample
from handgesture.data.frames import read_frame_or_skip
from handgesture.data.geometry import clip_to_frame, crop_scale, fit_size, pad_offsets, square_crop_box

log = logging.getLogger(__name__)

_SEED_PRIME = 1_000_003


def sample_seed(seed: int, epoch: int, position: int) -> int:
    """Deterministic per-item seed from the run seed, the epoch and the position within the epoch."""
    return ((seed * _SEED_PRIME + epoch) * _SEED_PRIME + position) % 2**63


def crop_square(frame: torch.Tensor, crop: tuple[int, int, int, int]) -> torch.Tensor:
    """The square ``crop`` of a [C, H, W] frame; parts outside the frame are zero."""
    channels, frame_h, frame_w = frame.shape
    x0, y0, x1, y1 = crop
    canvas = frame.new_zeros((channels, y1 - y0, x1 - x0))
    (sx0, sy0, sx1, sy1), (dx, dy) = clip_to_frame(crop, frame_w, frame_h)
    canvas[:, dy : dy + sy1 - sy0, dx : dx + sx1 - sx0] = frame[:, sy0:sy1, sx0:sx1]
    return canvas


def resize_and_pad(square: torch.Tensor, image_size: tuple[int, int]) -> torch.Tensor:
    """Resize a uint8 [C, S, S] square to fit ``image_size`` (antialiased), zero-pad it to exactly that."""
    fitted = fit_size(square.shape[-1], image_size)
    resized = F.interpolate(square[None].float(), size=fitted, mode="bilinear", antialias=True)
    resized = resized[0].round_().clamp_(0, 255).to(torch.uint8)
    return F.pad(resized, pad_offsets(fitted, image_size))


class HandCropDataset(Dataset):
    """Square crops around each sample's hand box, as uint8 [3, H, W] tensors of ``image_size``."""

    def __init__(self, samples: list[Sample], image_size: tuple[int, int], train: bool):
        height, width = image_size
        if height <= 0 or width <= 0:
            raise ValueError(f"image_size must be two positive ints (H, W), got {image_size}")
        self.samples = list(samples)
        self.image_size = (int(height), int(width))
        self.train = train

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, key):
        # An int key is an evaluation read (scale 1.0); the sampler's (index, seed) fixes the random scale.
        if isinstance(key, tuple):
            index, seed = key
            scale = crop_scale(seed, self.train)
        else:
            index, scale = operator.index(key), 1.0
        sample = self.samples[index]
        frame = read_frame_or_skip(sample.image, log)
        if frame is None:
            return None
        _, frame_h, frame_w = frame.shape
        crop = square_crop_box(sample.box, frame_w, frame_h, scale)
        image = resize_and_pad(crop_square(frame, crop), self.image_size)
        return {
            "image": image,
            "gesture": sample.gesture,
            "leading_hand": sample.leading_hand,
            "index": index,
        }


class EpochSampler(Sampler):
    """Yields ``(index, sample_seed)`` for one epoch's permutation, from position ``start`` on.

    Data-parallel (``world > 1``), the permutation, the positions and the seeds stay global: every rank
    reads its shard of the same order, so a resume at another world size continues at the same position.
    Training (``batch_size`` given) takes whole global batches of ``batch_size x world`` positions, rank
    ``r`` the ``r``-th slice of each; evaluation takes positions ``rank, rank + world, ...``.
    """

    def __init__(
        self,
        num_samples: int,
        seed: int,
        shuffle: bool,
        rank: int = 0,
        world: int = 1,
        batch_size: int | None = None,
    ):
        if num_samples < 0:
            raise ValueError(f"num_samples must be >= 0, got {num_samples}")
        self.num_samples, self.seed, self.shuffle = num_samples, seed, shuffle
        self.rank, self.world, self.batch_size = rank, world, batch_size
        self.epoch, self.start = 0, 0

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        """Select the epoch, and the position to resume from (already-seen positions are not revisited)."""
        if not 0 <= start <= self.num_samples:
            raise ValueError(f"start must be in [0, {self.num_samples}] for epoch {epoch}, got {start}")
        self.epoch, self.start = epoch, start

    def order(self) -> list[int]:
        """The full permutation of the current epoch."""
        if not self.shuffle:
            return list(range(self.num_samples))
        generator = torch.Generator().manual_seed(self.seed + self.epoch)
        return torch.randperm(self.num_samples, generator=generator).tolist()

    def positions(self) -> range | list[int]:
        """The global positions this rank reads, in order."""
        if self.world == 1:
            return range(self.start, self.num_samples)
        if self.batch_size is None:
            return range(self.start + self.rank, self.num_samples, self.world)
        size, span = self.batch_size, self.batch_size * self.world
        steps = (self.num_samples - self.start) // span
        first = self.start + self.rank * size
        return [first + step * span + i for step in range(steps) for i in range(size)]

    def __iter__(self):
        order = self.order()
        for position in self.positions():
            yield order[position], sample_seed(self.seed, self.epoch, position)

    def __len__(self) -> int:
        return len(self.positions())


def collate_skipping(batch) -> dict:
    """Stack the readable items; ``skipped`` counts the unreadable (None) ones. ``index`` is each item's
    position in the dataset (what an evaluation report names its examples by)."""
    items = [item for item in batch if item is not None]
    skipped = len(batch) - len(items)
    if not items:
        empty = torch.zeros(0, dtype=torch.long)
        images = torch.zeros((0, 3, 0, 0), dtype=torch.uint8)
        return {
            "image": images,
            "gesture": empty,
            "leading_hand": empty.clone(),
            "index": empty.clone(),
            "skipped": skipped,
        }
    labels = {
        key: torch.tensor([item[key] for item in items]) for key in ("gesture", "leading_hand", "index")
    }
    return {"image": torch.stack([item["image"] for item in items]), **labels, "skipped": skipped}


def make_loader(
    dataset,
    *,
    batch_size: int,
    sampler,
    num_workers: int = 0,
    prefetch_factor: int | None = None,
    pin_memory: bool = False,
    drop_last: bool = False,
    persistent_workers: bool = False,
) -> DataLoader:
    """A DataLoader over ``dataset`` in ``sampler``'s order that skips unreadable images.

    BatchNorm models fail on a training batch of 1, so training loaders should pass ``drop_last=True``.
    """
    extra = {}
    if num_workers > 0:
        # DataLoader rejects these two without worker processes.
        extra = {"prefetch_factor": prefetch_factor, "persistent_workers": persistent_workers}
    return DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=sampler,
        num_workers=num_workers,
        collate_fn=collate_skipping,
        pin_memory=pin_memory,
        drop_last=drop_last,
        **extra,
    )
