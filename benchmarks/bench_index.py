"""The index at HaGRID's scale, v1 (550k hands) or v2 (1.09 M images, 1.5 M boxes, three splits), images as
hard links to real frames (`index_layouts`).

    .venv/bin/python benchmarks/bench_index.py [--hands 550000] [--frames 300] [--prepare 600]
    .venv/bin/python benchmarks/bench_index.py --layout v2 [--images 1086158] [--frames 300] [--data DIR]
                                               [--one-process]

Writes --frames real 1920x1080 synthetic JPEGs and the annotation set whose images link to them. Then times,
in a fresh process (so its peak resident memory is the index's and the imports', not the writer's), what a
run does before its first step:
- reading the annotations (`read_annotations`): v1's one folder and its person split (`split_by_user`), or
  v2's three split folders;
- the crop cache's key of each (`cache_key`: every image stat-ed, every annotation file hashed);
- the training sampler and one epoch's order (`EpochSampler`), and the cached dataset's row lookup.
Targets: v1 under 60 s and 3 GB; v2 (issue 24) under 15 s and 1.5 GB. A large folder is read in two
processes (`index_halves`; --one-process: in one, as before): the CPU seconds include the forked reader's, and
the memory both take is reported as `report_memory` says. With v1, it then prepares the crop cache of
--prepare hands with 1 and with 2 processes and extrapolates that throughput to 16 cores.
With --data, the dataset is written into DIR once and read from there by later runs with the same options
(v2's takes most of two minutes to write and 1.7 GB; delete DIR when done).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import resource
import tempfile
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import benchlib
import numpy as np

benchlib.setup_env()

from index_layouts import V2_IMAGES, write_v1, write_v2  # noqa: E402

from handgesture.data import index_halves  # noqa: E402
from handgesture.data.annotations import read_annotations, split_by_user  # noqa: E402
from handgesture.data.cache import cache_key, cache_settings, prepare_cache  # noqa: E402
from handgesture.data.cached_dataset import rows_of  # noqa: E402
from handgesture.data.dataset import EpochSampler  # noqa: E402
from handgesture.data.synthetic import generate_synthetic  # noqa: E402
from handgesture.labels import HAGRID_TARGETS, HAGRID_V2_TARGETS  # noqa: E402

TARGETS = {"v1": (60.0, 3.0), "v2": (15.0, 1.5)}  # seconds, peak RSS GB


def peak_rss_gb() -> float:
    """This process's peak resident memory since it started. Not ru_maxrss: that survives fork and exec, so
    a fresh process would report its parent's peak."""
    with open("/proc/self/status") as fh:
        kib = next(int(line.split()[1]) for line in fh if line.startswith("VmHWM:"))
    return kib * 1024 / 1e9


def children() -> tuple[float, float]:
    """The largest peak resident memory (GB) of this process's reaped children (the forked readers; pages
    they share with this process count in it too), and their CPU seconds."""
    used = resource.getrusage(resource.RUSAGE_CHILDREN)
    return used.ru_maxrss * 1024 / 1e9, used.ru_utime + used.ru_stime


def cpu_seconds() -> float:
    """This process's CPU seconds and its reaped children's."""
    return time.process_time() + children()[1]


class JointPeak(threading.Thread):
    """The largest sum, sampled every 0.2 s from outside, of a process's resident memory and its children's
    private memory (smaps_rollup): what the index and its forked reader take together, the pages the reader
    shares with it counted once. A sample can miss a peak shorter than that."""

    def __init__(self, pid: int):
        super().__init__(daemon=True)
        self.pid, self.peak_kib, self._done = pid, 0, threading.Event()

    def run(self) -> None:
        while not self._done.wait(0.2):
            children = [pid for pid, parent in _processes() if parent == self.pid]
            joint = _rollup_kib(self.pid, "Rss") + sum(_rollup_kib(pid, "Private_") for pid in children)
            self.peak_kib = max(self.peak_kib, joint)

    def stop(self) -> float:
        self._done.set()
        self.join()
        return self.peak_kib * 1024 / 1e9


def _processes():
    for name in os.listdir("/proc"):
        try:
            with open(f"/proc/{name}/stat") as fh:  # "pid (comm) state ppid ...", comm may hold anything
                yield int(name), int(fh.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue


def _rollup_kib(pid: int, prefix: str) -> int:
    """The kiB of the smaps_rollup lines starting with ``prefix`` (Private_: its Clean and Dirty)."""
    try:
        with open(f"/proc/{pid}/smaps_rollup") as fh:
            return sum(int(line.split()[1]) for line in fh if line.startswith(prefix))
    except OSError:  # it exited between the listing and now
        return 0


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


def timed(label: str, fn, rows: list):
    """``fn()`` and its wall seconds; its row also says the CPU seconds, a forked reader's included (on a
    shared machine, what idle cores would need, nearly) and this process's peak RSS so far."""
    start, cpu = time.perf_counter(), cpu_seconds()
    result = fn()
    seconds, cpu = time.perf_counter() - start, cpu_seconds() - cpu
    rows.append([label, f"{seconds:.1f}", f"{cpu:.1f}", f"{peak_rss_gb():.2f}"])
    print(f"{label}: {seconds:.1f} s ({cpu:.1f} s CPU), peak RSS {peak_rss_gb():.2f} GB", flush=True)
    return result, seconds


def read_and_key(label: str, ann: Path, images: Path, targets, rows: list) -> tuple[list, float]:
    """One annotations folder's samples and their cache key, as prepare reads them; and the seconds."""
    found, read_s = timed(f"read annotations{label}", lambda: read_annotations(ann, images, targets), rows)
    files, settings = sorted(ann.glob("*.json")), cache_settings((224, 224))

    def key():  # as prepare keys it: with the sizes the reader stat-ed
        return cache_key(found.samples, settings, files, targets, found.sizes)

    _, key_s = timed(f"cache key{label}", key, rows)
    return found.samples, read_s + key_s


def sampler_rows(samples: list, train: list, rows: list) -> float:
    def sampler():
        epoch = EpochSampler(len(train), seed=42, shuffle=True)
        epoch.set_epoch(3)
        order = epoch.order()
        cache = SimpleNamespace(samples=samples, rows=np.arange(len(samples)), folder=Path("cache"))
        return order, rows_of(cache, train)  # what CachedCropDataset looks up for its split

    return timed("sampler and row lookup", sampler, rows)[1]


def index_v1(ann: Path, images: Path, rows: list) -> tuple[float, int]:
    samples, total = read_and_key("", ann, images, HAGRID_TARGETS, rows)
    (train, _), seconds = timed("split by person", lambda: split_by_user(samples, 42, 0.2), rows)
    return total + seconds + sampler_rows(samples, train, rows), len(samples)


def index_v2(folders: dict[str, Path], images: Path, rows: list) -> tuple[float, int]:
    total, count, train = 0.0, 0, []
    for split, ann in folders.items():
        samples, seconds = read_and_key(f" ({split})", ann, images, HAGRID_V2_TARGETS, rows)
        total, count = total + seconds, count + len(samples)
        train = samples if split == "train" else train
        del samples  # a run keeps each split's samples; the peak here is one split's read plus the train's
    return total + sampler_rows(train, train, rows), count


def measure(layout: str, folders, images: Path, one_process: bool) -> tuple[list, float, int, tuple]:
    """The index's rows, total seconds, samples and peak RSS (this process's, its forked readers'), in this
    (fresh) process."""
    if one_process:
        index_halves.FORK_MIN_BYTES = 2**62
    rows, before = [["imports (before the index)", "", "", f"{peak_rss_gb():.2f}"]], children()
    cpu = cpu_seconds()
    if layout == "v1":
        total, count = index_v1(folders, images, rows)
    else:
        total, count = index_v2(folders, images, rows)
    rows.append(["whole index", f"{total:.1f}", f"{cpu_seconds() - cpu:.1f}", f"{peak_rss_gb():.2f}"])
    readers, readers_cpu = children()
    ran = readers_cpu > before[1]  # a folder was read in two
    return rows, total, count, (peak_rss_gb(), readers if ran else 0.0, before[0])


def prepare_rate(ann: Path, images: Path, count: int, workers: int, root: Path) -> float:
    samples = read_annotations(ann, images, HAGRID_TARGETS).samples[:count]
    start = time.perf_counter()
    prepare_cache(samples, (224, 224), root / f"cache-{workers}", workers=workers)
    return count / (time.perf_counter() - start)


def write(layout: str, root: Path, args) -> tuple:
    start = time.perf_counter()
    root.mkdir(parents=True, exist_ok=True)
    frames = write_frames(root, args.frames)
    if layout == "v1":
        ann, images, hands = write_v1(root, frames, args.hands)
        what = f"{hands} hands"
    else:
        ann, images, count, boxes = write_v2(root, frames, args.images)
        size = sum(f.stat().st_size for folder in ann.values() for f in folder.glob("*.json")) / 1e9
        what = f"{count} images, {boxes} boxes, {size:.2f} GB of JSON,"
    print(f"wrote {what} over {len(frames)} frames in {time.perf_counter() - start:.0f} s", flush=True)
    return ann, images


def written(layout: str, root: Path, args) -> tuple:
    """The dataset in ``root``: the one an earlier run with the same options wrote there, else written now
    (its folders recorded last, so an interrupted write is never taken for a finished one)."""
    done, options = root / "written.json", [layout, args.hands, args.images, args.frames]
    if done.exists():
        record = json.loads(done.read_text())
        if record["options"] == options:
            print(f"reusing the dataset in {root}", flush=True)
            ann = Path(record["ann"]) if layout == "v1" else {k: Path(v) for k, v in record["ann"].items()}
            return ann, Path(record["images"])
        raise SystemExit(f"{root} holds a dataset written with other options {record['options']}: delete it")
    if root.exists() and any(root.iterdir()):
        raise SystemExit(f"{root} is not empty and holds no finished dataset: delete it or name another")
    ann, images = write(layout, root, args)
    folders = str(ann) if layout == "v1" else {k: str(v) for k, v in ann.items()}
    done.write_text(json.dumps({"options": options, "ann": folders, "images": str(images)}))
    return ann, images


def report(layout: str, rows: list, total: float, count: int, peak: float) -> None:
    print(f"\n{count} samples ({layout}), {os.cpu_count()} cores here, {benchlib.load_note()}\n")
    print(benchlib.table(["step", "seconds", "CPU seconds", "peak RSS GB"], rows))
    seconds, gb = TARGETS[layout]
    verdict = "met" if total < seconds and peak < gb else "not met"
    print(f"\nwhole index: {total:.1f} s, {peak:.2f} GB (targets < {seconds:g} s, < {gb:g} GB): {verdict}")


def report_memory(peaks: tuple[float, float, float], joint_peak: float) -> float:
    """The peak memory the index takes, the verdict's: the joint sample's, or this process's peak if larger.
    Also each process's peak RSS and their sum, a bound sure to hold (pages both map counted twice)."""
    index, readers, before = peaks
    sampled = f"{joint_peak:.2f} GB sampled (its RSS plus its children's private memory, every 0.2 s)"
    if not readers:
        print(f"\nmemory: one process (no folder read in two), peak RSS {index:.2f} GB; {sampled}")
        return max(index, joint_peak)
    peak = f"{readers:.2f} GB" if readers > before else f"at most {readers:.2f} GB"
    print(
        f"\nmemory: peak RSS {index:.2f} GB in the index process, {peak} in its forked readers (pages shared "
        f"with it counted in both; a subprocess the imports ran: {before:.2f} GB); both at most "
        f"{index + readers:.2f} GB (the peaks summed); {sampled}"
    )
    return max(index, joint_peak)


def report_prepare(ann: Path, images: Path, args, root: Path, count: int) -> None:
    rates = {w: prepare_rate(ann, images, args.prepare, w, root) for w in (1, 2)}
    sixteen = rates[1] * 16
    print(
        f"cache preparation: {rates[1]:.1f} hands/s with 1 process, {rates[2]:.1f} with 2 "
        f"(x{rates[2] / rates[1]:.2f}); full HaGRID ({count} hands) on 16 cores at {rates[1]:.1f} "
        f"per process: {count / sixteen / 60:.0f} min (linear scaling assumed)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layout", choices=sorted(TARGETS), default="v1")
    parser.add_argument("--hands", type=int, default=550_000, help="v1: annotated hands")
    parser.add_argument("--images", type=int, default=V2_IMAGES, help="v2: images over the three splits")
    parser.add_argument("--frames", type=int, default=300, help="real full-HD frames the images link to")
    parser.add_argument("--prepare", type=int, default=600, help="v1: hands per cache preparation timing")
    parser.add_argument("--data", type=Path, help="write the dataset here once, reuse it in later runs")
    parser.add_argument("--one-process", action="store_true", help="read no folder in two processes")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-index-") as tmp:
        root = Path(tmp)
        ann, images = written(args.layout, args.data, args) if args.data else write(args.layout, root, args)
        with multiprocessing.get_context("spawn").Pool(1) as pool:  # a fresh process: the index's own peak
            joint = JointPeak(pool.apply(os.getpid))
            joint.start()
            rows, total, count, peaks = pool.apply(measure, (args.layout, ann, images, args.one_process))
            joint_peak = joint.stop()
        report(args.layout, rows, total, count, report_memory(peaks, joint_peak))
        if args.layout == "v1":
            report_prepare(ann, images, args, root, count)


if __name__ == "__main__":
    main()
