"""Loader throughput per core: naive PIL full-frame path vs HandCropDataset vs the crop cache.

    .venv/bin/python benchmarks/bench_loader.py [--images 300] [--size 224] [--fmt raw|jpeg]

Writes synthetic 1920x1080 HaGRID-format JPEGs to a temp folder, prepares the crop cache (timed
separately), then reads every sample once per path with a single process (num_workers=0 figures are per core).
"""

from __future__ import annotations

import argparse
import tempfile
import time

import numpy as np
import torch
from PIL import Image

from handgesture.data.annotations import read_annotations
from handgesture.data.cache import prepare_cache
from handgesture.data.dataset import HandCropDataset
from handgesture.data.geometry import crop_scale, square_crop_box

TARGETS = ["call", "fist", "palm", "peace", "like", "no_gesture"]


def naive(sample, size: int, scale: float) -> torch.Tensor:
    """HaGRID's classifier path: PIL open + full decode, crop (padded), resize, per sample."""
    frame = Image.open(sample.image).convert("RGB")
    x0, y0, x1, y1 = square_crop_box(sample.box, frame.width, frame.height, scale)
    crop = frame.crop((x0, y0, x1, y1)).resize((size, size), Image.BILINEAR)  # PIL zero-pads outside
    return torch.from_numpy(np.array(crop)).permute(2, 0, 1)


def rate(fn, keys) -> float:
    start = time.perf_counter()
    for key in keys:
        fn(key)
    return len(keys) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--images", type=int, default=300)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--fmt", default="raw", choices=["raw", "jpeg"])
    args = parser.parse_args()
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        per_class = max(1, args.images // (len(TARGETS) - 1))
        info = generate(tmp, per_class)
        samples = read_annotations(info["annotations"], info["dataset"], TARGETS).samples
        size = (args.size, args.size)
        start = time.perf_counter()
        cache = prepare_cache(samples, size, f"{tmp}/cache", fmt=args.fmt)
        prep = len(samples) / (time.perf_counter() - start)
        keys = [(i, 1000 + i) for i in range(len(samples))]
        full, cached = HandCropDataset(samples, size, train=True), cache.dataset(train=True)
        rates = {
            "naive (PIL full frame)": rate(
                lambda k: naive(samples[k[0]], args.size, crop_scale(k[1], True)), keys
            ),
            "HandCropDataset (torchvision full frame)": rate(full.__getitem__, keys),
            f"CachedCropDataset ({args.fmt})": rate(cached.__getitem__, keys),
        }
        base = rates["naive (PIL full frame)"]
        print(f"{len(samples)} samples from {info['images']} 1920x1080 frames, image_size {size}, 1 process")
        print(f"cache preparation (1 process): {prep:.1f} samples/s, {cache.folder.stat().st_size} B folder")
        for name, value in rates.items():
            print(f"{name:44s} {value:8.1f} img/s/core  x{value / base:.1f} vs naive")


def generate(out, per_class):
    from handgesture.data.synthetic import generate_synthetic

    return generate_synthetic(
        out, per_class=per_class, users=4, frame_size=(1920, 1080), seed=0, targets=TARGETS
    )


if __name__ == "__main__":
    main()
