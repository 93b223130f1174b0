"""Loader throughput per core: HaGRID's full-frame path vs HandCropDataset vs the crop cache.

    .venv/bin/python benchmarks/bench_loader.py [--images 300] [--size 224] [--fmt jpeg|raw] [--levels 2]
        [--quality 95] [--workers 2]

Writes synthetic 1920x1080 HaGRID-format JPEGs to a temp folder, prepares the crop cache (timed
separately), then reads every sample once per path with a single process (num_workers=0 figures are per core),
and compares the cached crops with the full-frame path's.

The frames are made as hard as HaGRID's own: sensor-like noise over each synthetic frame, re-encoded, so a
frame is at least 1 MB (HaGRID's mean is 1.3 MB). Easy frames flatter a JPEG cache twice (smaller rows that
decode faster), so the script refuses to report on frames that come out smaller.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps
from torchvision.transforms.functional import convert_image_dtype, pil_to_tensor

from handgesture.data.annotations import read_annotations
from handgesture.data.cache import DEFAULT_FORMAT, DEFAULT_LEVELS, DEFAULT_QUALITY, prepare_cache
from handgesture.data.dataset import HandCropDataset, make_loader
from handgesture.data.geometry import crop_scale, square_crop_box

TARGETS = ["call", "fist", "palm", "peace", "like", "no_gesture"]
MIN_FRAME_KIB = 1000  # about HaGRID's frames (1.3 MB mean): a cache measured on easier frames proves nothing
NOISE_SIGMA = 16  # per-pixel noise (levels of 255) that brings the synthetic frames over MIN_FRAME_KIB


def naive(sample, size: int, scale: float) -> torch.Tensor:
    """HaGRID's classifier: PIL open + full decode, crop, ImageOps.pad (resize + pad), to a float tensor."""
    frame = Image.open(sample.image).convert("RGB")
    x0, y0, x1, y1 = square_crop_box(sample.box, frame.width, frame.height, scale)
    crop = ImageOps.pad(frame.crop((x0, y0, x1, y1)), (size, size), color=(0, 0, 0))
    return convert_image_dtype(pil_to_tensor(crop))


def rate(fn, keys) -> float:
    start = time.perf_counter()
    for key in keys:
        fn(key)
    return len(keys) / (time.perf_counter() - start)


def loader_rate(dataset, keys, workers: int) -> float:
    """Images per second through a DataLoader with ``workers`` processes (batches of 64)."""
    loader = make_loader(dataset, batch_size=64, sampler=keys, num_workers=workers, prefetch_factor=4)
    start = time.perf_counter()
    count = sum(len(batch["image"]) for batch in loader)
    return count / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--images", type=int, default=300)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--fmt", default=DEFAULT_FORMAT, choices=["raw", "jpeg"])
    parser.add_argument("--quality", type=int, default=DEFAULT_QUALITY)
    parser.add_argument("--levels", type=int, default=DEFAULT_LEVELS)
    parser.add_argument("--repeats", type=int, default=3, help="interleaved passes per path; median shown")
    parser.add_argument("--workers", type=int, default=0, help="also time a DataLoader with this many")
    args = parser.parse_args()
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        per_class = max(1, args.images // (len(TARGETS) - 1))
        info = generate(tmp, per_class)
        harden(info["dataset"])
        samples = read_annotations(info["annotations"], info["dataset"], TARGETS).samples
        size = (args.size, args.size)
        start = time.perf_counter()
        cache = prepare_cache(
            samples, size, f"{tmp}/cache", fmt=args.fmt, quality=args.quality, levels=args.levels
        )
        prep = len(samples) / (time.perf_counter() - start)
        keys = [(i, 1000 + i) for i in range(len(samples))]
        levels = f"{args.levels} level" + ("s" if args.levels > 1 else "")
        full, cached = HandCropDataset(samples, size, train=True), cache.dataset(train=True)
        paths = {
            "naive (HaGRID: PIL full frame, pad)": lambda k: naive(
                samples[k[0]], args.size, crop_scale(k[1], True)
            ),
            "HandCropDataset (torchvision full frame)": full.__getitem__,
            f"CachedCropDataset ({args.fmt} rows, {levels})": cached.__getitem__,
        }
        runs = {name: [] for name in paths}
        for _ in range(args.repeats):
            for name, fn in paths.items():
                runs[name].append(rate(fn, keys))
        rates = {name: statistics.median(values) for name, values in runs.items()}
        base = rates["naive (HaGRID: PIL full frame, pad)"]
        frames = {s.image for s in samples}
        frame_kb = sum(os.path.getsize(f) for f in frames) / len(frames) / 1024
        if frame_kb < MIN_FRAME_KIB:
            raise SystemExit(f"{frame_kb:.0f} KiB frames are easier than HaGRID's: need >= {MIN_FRAME_KIB}")
        print(
            f"{len(samples)} samples from {len(frames)} 1920x1080 JPEG frames (mean {frame_kb:.0f} KiB), "
            f"image_size {size}, 1 process, median of {args.repeats}"
        )
        row_kb = cache.summary()["bytes"] / len(samples) / 1024
        print(f"cache preparation (1 process): {prep:.1f} samples/s; {row_kb:.1f} KiB per sample cached")
        mean, worst = crop_error(full, cached, keys)
        print(
            f"cached crops vs the full-frame path: mean |difference| {mean:.2f}, "
            f"worst crop's mean {worst:.2f}"
        )
        for name, value in rates.items():
            print(f"{name:44s} {value:8.1f} img/s/core  x{value / base:.1f} vs naive")
        if args.workers:
            value = loader_rate(cached, keys * 4, args.workers)
            print(f"DataLoader over the cache, {args.workers} workers: {value:.1f} img/s in all")


def crop_error(full, cached, keys) -> tuple[float, float]:
    """Mean absolute difference (levels of 255) of the cached crops from the full-frame path's: over all
    crops, and the worst single crop's."""
    means = [(full[k]["image"].int() - cached[k]["image"].int()).abs().float().mean().item() for k in keys]
    return statistics.mean(means), max(means)


def harden(images_dir: str) -> None:
    """Add sensor-like noise to every frame and re-encode it (quality 92, as a camera might): the
    synthetic frames' flat shapes compress far better than photographs do."""
    rng = np.random.default_rng(0)
    for path in sorted(Path(images_dir).rglob("*.jpg")):
        pixels = np.asarray(Image.open(path).convert("RGB"), dtype=np.int16)
        noisy = np.clip(pixels + rng.normal(0, NOISE_SIGMA, pixels.shape), 0, 255).astype(np.uint8)
        Image.fromarray(noisy).save(path, quality=92)


def generate(out, per_class):
    from handgesture.data.synthetic import generate_synthetic

    return generate_synthetic(
        out, per_class=per_class, users=4, frame_size=(1920, 1080), seed=0, targets=TARGETS
    )


if __name__ == "__main__":
    main()
