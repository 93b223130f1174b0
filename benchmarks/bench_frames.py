"""Full-frame loader throughput per core: HaGRID v2's per-sample path vs the frame cache.

    .venv/bin/python benchmarks/bench_frames.py [--images 60] [--size 224] [--fmt jpeg|raw] [--quality 95]
        [--repeats 3]

Writes full-HD JPEGs that are hard to compress (noise over blotches, about 1 MB each, as a sharp HaGRID frame
is) in HaGRID's layout, prepares the frame cache (`model.full_frame=true`'s; timed separately), then reads
every sample once per path in one process with one torch thread: images per second per core.

The naive path is v2's classifier (`dataset/dataset.py` + its albumentations transforms): PIL open + full
decode + `convert("RGB")`, `LongestMaxSize`, `PadIfNeeded(value=144)` centred, `Normalize`, to a tensor.
Without OpenCV here, the resize is PIL's bilinear; the "decode only" row times the full-HD decode alone, the
least that path can cost whatever its resize, so the speed-up over it is a lower bound.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from handgesture.data.annotations import read_annotations
from handgesture.data.cache import DEFAULT_FORMAT, DEFAULT_QUALITY, prepare_cache
from handgesture.data.full_frames import FullFrameDataset
from handgesture.data.geometry import letterbox_size, pad_offsets
from handgesture.full_frame import V2_MEAN, V2_PAD_VALUE, V2_STD

FRAME = (1920, 1080)
TARGETS = ["like", "no_gesture"]


def write_frames(root: Path, count: int) -> tuple[Path, Path]:
    """``count`` noisy full-HD JPEGs under ``<root>/images/like`` and their annotations (one hand each)."""
    rng = np.random.default_rng(0)
    ann, images = root / "annotations", root / "images" / "like"
    ann.mkdir(parents=True)
    images.mkdir(parents=True)
    entries = {}
    for i in range(count):
        blotches = rng.integers(0, 256, (FRAME[1] // 60, FRAME[0] // 60, 3), dtype=np.uint8)
        base = np.asarray(Image.fromarray(blotches).resize(FRAME, Image.Resampling.BILINEAR), dtype=np.int16)
        noisy = np.clip(base + rng.normal(0, 16, base.shape), 0, 255).astype(np.uint8)
        Image.fromarray(noisy).save(images / f"f{i:05d}.jpg", quality=90)
        entries[f"f{i:05d}"] = {"bboxes": [[0.4, 0.3, 0.1, 0.2]], "labels": ["like"], "user_id": f"u{i % 4}"}
    (ann / "like.json").write_text(json.dumps(entries))
    return ann, images.parent


def naive(path: str, size: int) -> torch.Tensor:
    """HaGRID v2's per-sample path: decode the frame, letterbox it on grey 144, normalise, to a tensor."""
    frame = Image.open(path).convert("RGB")
    height, width = letterbox_size(frame.width, frame.height, (size, size))
    resized = np.asarray(frame.resize((width, height), Image.Resampling.BILINEAR))
    left, right, top, bottom = pad_offsets((height, width), (size, size))
    padded = np.pad(resized, ((top, bottom), (left, right), (0, 0)), constant_values=V2_PAD_VALUE)
    normalised = (padded.astype(np.float32) / 255.0 - np.float32(V2_MEAN)) / np.float32(V2_STD)
    return torch.from_numpy(normalised.transpose(2, 0, 1).copy())


def decode_only(path: str) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"))


def rate(fn, keys) -> float:
    start = time.perf_counter()
    for key in keys:
        fn(key)
    return len(keys) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--images", type=int, default=60)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--fmt", default=DEFAULT_FORMAT, choices=["raw", "jpeg"])
    parser.add_argument("--quality", type=int, default=DEFAULT_QUALITY)
    parser.add_argument("--repeats", type=int, default=3, help="interleaved passes per path; median shown")
    args = parser.parse_args()
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        ann, data = write_frames(Path(tmp), args.images)
        samples = read_annotations(ann, data, TARGETS, full_frame=True).samples
        size = (args.size, args.size)
        start = time.perf_counter()
        cache = prepare_cache(
            samples, size, f"{tmp}/cache", fmt=args.fmt, quality=args.quality, full_frame=True
        )
        prep = len(samples) / (time.perf_counter() - start)
        keys = [(i, 1000 + i) for i in range(len(samples))]
        direct, cached = FullFrameDataset(samples, size), cache.dataset(train=True)
        naive_name = "naive (HaGRID v2: PIL decode, letterbox 144, Normalize)"
        paths = {
            naive_name: lambda k: naive(samples[k[0]].image, args.size),
            "naive decode only (PIL full-HD decode)": lambda k: decode_only(samples[k[0]].image),
            "FullFrameDataset (torchvision decode, letterbox)": direct.__getitem__,
            f"CachedFrameDataset ({args.fmt} rows)": cached.__getitem__,
        }
        runs = {name: [] for name in paths}
        for _ in range(args.repeats):
            for name, fn in paths.items():
                runs[name].append(rate(fn, keys))
        rates = {name: statistics.median(values) for name, values in runs.items()}
        _report(args, samples, cache, prep, direct, cached, keys, rates, naive_name)


def _report(args, samples, cache, prep, direct, cached, keys, rates, naive_name) -> None:
    frame_kb = statistics.mean(os.path.getsize(s.image) for s in samples) / 1024
    print(
        f"{len(samples)} samples from {len(samples)} {FRAME[0]}x{FRAME[1]} JPEG frames (mean "
        f"{frame_kb:.0f} KiB), image_size ({args.size}, {args.size}), 1 process, median of {args.repeats}"
    )
    row_kb = cache.summary()["bytes"] / len(samples) / 1024
    print(f"frame cache preparation (1 process): {prep:.1f} frames/s; {row_kb:.1f} KiB per frame cached")
    diffs = [(direct[k]["image"].int() - cached[k]["image"].int()).abs().float().mean().item() for k in keys]
    print(f"cached frames vs decoding each time: mean |difference| {statistics.mean(diffs):.2f}")
    base = rates[naive_name]
    for name, value in rates.items():
        print(f"{name:58s} {value:8.1f} img/s/core  x{value / base:.1f} vs naive")


if __name__ == "__main__":
    main()
