"""The index at HaGRID's scale: about 550k annotated hands in HaGRID's JSON layout, images as hard links.

    .venv/bin/python benchmarks/bench_index.py [--hands 550000] [--frames 300] [--prepare 600]

Writes --frames real 1920x1080 synthetic JPEGs, then 18 gesture files of HaGRID v1 annotations whose images
are hard links to those frames (so every annotated image exists, with a real size on disk, at no disk cost),
about 1.1 hands per image (a gesture hand, sometimes a no_gesture one) and ~35k people, as HaGRID has. Then
times, in one process, what a run does before its first step:
- reading the annotations (`read_annotations`) and the person split (`split_by_user`);
- the crop cache's key (`cache_key`: every image stat-ed, every annotation file hashed);
- the training sampler and one epoch's order (`EpochSampler`), and the cached dataset's row lookup;
with the peak resident memory after each. Targets: the whole index in under 60 s and 3 GB.
Then prepares the crop cache of --prepare hands with 1 and with 2 processes and extrapolates that
throughput to all the hands on 16 cores.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import tempfile
import time
import uuid
from pathlib import Path

import benchlib

benchlib.setup_env()

from handgesture.data.annotations import read_annotations, split_by_user  # noqa: E402
from handgesture.data.cache import cache_key, cache_settings, prepare_cache  # noqa: E402
from handgesture.data.dataset import EpochSampler  # noqa: E402
from handgesture.data.synthetic import generate_synthetic  # noqa: E402
from handgesture.labels import HAGRID_TARGETS, NO_GESTURE  # noqa: E402

GESTURES = [t for t in HAGRID_TARGETS if t != NO_GESTURE]
PEOPLE = 35_000  # HaGRID v1: 34,730 subjects
SECOND_HAND = 0.1  # share of images that also annotate a no_gesture hand
TARGET_SECONDS, TARGET_RSS_GB = 60.0, 3.0


def peak_rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e9  # ru_maxrss is KiB on Linux


def write_frames(root: Path, count: int) -> list[Path]:
    """`count` real full-HD JPEGs (the synthetic generator's), to link the annotated images to."""
    info = generate_synthetic(
        root / "frames",
        per_class=max(1, count // len(HAGRID_TARGETS)),
        users=10,
        frame_size=(1920, 1080),
        seed=1,
    )
    return sorted(Path(info["dataset"]).rglob("*.jpg"))


def write_dataset(root: Path, frames: list[Path], hands: int) -> tuple[Path, Path, int]:
    """HaGRID v1's layout, `<ann>/<gesture>.json` and `<images>/<gesture>/<id>.jpg`; returns the folders and
    the number of hands written."""
    rng = random.Random(0)
    people = [uuid.UUID(int=rng.getrandbits(128)).hex for _ in range(PEOPLE)]
    ann, images = root / "ann_train_val", root / "images"
    ann.mkdir()
    per_gesture = round(hands / (1 + SECOND_HAND) / len(GESTURES))
    written = 0
    for gesture in GESTURES:
        (images / gesture).mkdir(parents=True)
        entries = {}
        for _ in range(per_gesture):
            image_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))
            os.link(frames[rng.randrange(len(frames))], images / gesture / f"{image_id}.jpg")
            boxes, labels = [_box(rng)], [gesture]
            if rng.random() < SECOND_HAND:
                boxes.append(_box(rng))
                labels.append(NO_GESTURE)
            entries[image_id] = {
                "bboxes": boxes,
                "labels": labels,
                "leading_hand": rng.choice(["right", "left"]),
                "leading_conf": 1.0,
                "user_id": rng.choice(people),
            }
            written += len(boxes)
        (ann / f"{gesture}.json").write_text(json.dumps(entries))
    return ann, images, written


def _box(rng: random.Random) -> list[float]:
    w, h = rng.uniform(0.05, 0.12), rng.uniform(0.1, 0.2)  # HaGRID's hands: about 100-250 px of 1080
    return [round(rng.uniform(0, 1 - w), 6), round(rng.uniform(0, 1 - h), 6), round(w, 6), round(h, 6)]


def timed(label: str, fn, rows: list):
    start = time.perf_counter()
    result = fn()
    seconds = time.perf_counter() - start
    rows.append([label, f"{seconds:.1f}", f"{peak_rss_gb():.2f}"])
    print(f"{label}: {seconds:.1f} s, peak RSS {peak_rss_gb():.2f} GB", flush=True)
    return result, seconds


def index_rows(ann: Path, images: Path) -> tuple[list, float, int]:
    rows: list = []
    total = 0.0
    found, seconds = timed("read annotations", lambda: read_annotations(ann, images, HAGRID_TARGETS), rows)
    total += seconds
    samples = found.samples
    (train, val), seconds = timed("split by person", lambda: split_by_user(samples, 42, 0.2), rows)
    total += seconds
    files = sorted(ann.glob("*.json"))
    settings = cache_settings((224, 224))
    _, seconds = timed("cache key", lambda: cache_key(samples, settings, files, HAGRID_TARGETS), rows)
    total += seconds

    def sampler():
        epoch = EpochSampler(len(train), seed=42, shuffle=True)
        epoch.set_epoch(3)
        order = epoch.order()
        row_of = {s: i for i, s in enumerate(samples)}  # what CachedCropDataset builds for its split
        return order, [row_of[s] for s in train]

    _, seconds = timed("sampler and row lookup", sampler, rows)
    total += seconds
    rows.append(["whole index", f"{total:.1f}", f"{peak_rss_gb():.2f}"])
    return rows, total, len(samples)


def prepare_rate(ann: Path, images: Path, count: int, workers: int, root: Path) -> float:
    samples = read_annotations(ann, images, HAGRID_TARGETS).samples[:count]
    start = time.perf_counter()
    prepare_cache(samples, (224, 224), root / f"cache-{workers}", workers=workers)
    return count / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hands", type=int, default=550_000)
    parser.add_argument("--frames", type=int, default=300, help="real full-HD frames the images link to")
    parser.add_argument("--prepare", type=int, default=600, help="hands per cache preparation timing")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-index-") as tmp:
        root = Path(tmp)
        start = time.perf_counter()
        frames = write_frames(root, args.frames)
        ann, images, hands = write_dataset(root, frames, args.hands)
        print(
            f"wrote {hands} hands over {len(frames)} frames in {time.perf_counter() - start:.0f} s",
            flush=True,
        )
        rows, total, count = index_rows(ann, images)
        rates = {w: prepare_rate(ann, images, args.prepare, w, root) for w in (1, 2)}
    print(f"\n{count} hands, {os.cpu_count()} cores here\n")
    print(benchlib.table(["step", "seconds", "peak RSS GB"], rows))
    verdict = "met" if total < TARGET_SECONDS and peak_rss_gb() < TARGET_RSS_GB else "not met"
    print(
        f"\nwhole index: {total:.1f} s, {peak_rss_gb():.2f} GB (targets < {TARGET_SECONDS:.0f} s, "
        f"< {TARGET_RSS_GB:.0f} GB): {verdict}"
    )
    per_process = rates[1]
    sixteen = per_process * 16
    print(
        f"cache preparation: {rates[1]:.1f} hands/s with 1 process, {rates[2]:.1f} with 2 "
        f"(x{rates[2] / rates[1]:.2f}); full HaGRID ({count} hands) on 16 cores at {per_process:.1f} "
        f"per process: {count / sixteen / 60:.0f} min (linear scaling assumed)"
    )


if __name__ == "__main__":
    main()
