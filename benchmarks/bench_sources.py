"""Prepare throughput per core by where the frames live: extracted files, a local zip, a zip on S3.

One dataset of full-HD synthetic frames is written three ways: extracted (``images/<gesture>/<id>.jpg``),
the tutorial's ``subsample.zip`` beside it, and that zip uploaded to a moto S3 server on 127.0.0.1. Each
round reads the annotations and prepares the crop cache in one process (``workers=0``: one core) as a new
task would (`sources.activate`: central directories read again; the process's S3 client is kept, as in a
long-lived worker), after one warm-up round of each form (imports, the first client), and the best of
``--repeats`` rounds is kept. The figure is frames per second per core, and each source's ratio to the
extracted files (target >= 0.9); the best rounds' wall and CPU seconds (this process, and moto's) follow.

    .venv/bin/python benchmarks/bench_sources.py --images 120 --repeats 3
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("OMP_NUM_THREADS", "1")  # before torch is imported, or it is not read: one core

from tests.archive_data import tutorial_zips  # noqa: E402
from tests.s3_fixtures import MotoServer  # noqa: E402

from handgesture.data import reading, sources  # noqa: E402
from handgesture.data.annotations import read_annotations  # noqa: E402
from handgesture.data.cache import cache_settings  # noqa: E402
from handgesture.data.cache_build import write_rows  # noqa: E402
from handgesture.data.synthetic import generate_synthetic  # noqa: E402
from handgesture.storage import S3Settings  # noqa: E402

TARGETS = ["call", "fist", "like", "palm"]


@dataclass
class Round:
    rate: float  # frames per second (per core: one process, one thread)
    gets: int  # S3 GETs for the frames
    wall: float  # seconds
    cpu: float  # CPU seconds of this process
    server_cpu: float  # CPU seconds of the moto server (0 without S3)


def prepare_round(annotations: str, dataset: str, s3: S3Settings | None, scratch: Path, server) -> Round:
    """One cold prepare (a new task: nothing listed; the process's S3 client kept): annotations read, every
    frame decoded, crops written."""
    sources.activate(s3)
    start, cpu, server_cpu = time.perf_counter(), time.process_time(), _cpu_seconds(server)
    samples = read_annotations(annotations, dataset, TARGETS).samples
    with _counted_gets(dataset if s3 else None) as gets:  # after the listing: the frames' GETs alone
        folder = Path(tempfile.mkdtemp(dir=scratch))
        unreadable = write_rows(samples, cache_settings((224, 224)), folder, workers=0)
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    assert unreadable == 0, f"{unreadable} frames unreadable from {dataset}"
    frames = len({s.image for s in samples})
    return Round(frames / seconds, len(gets), seconds, cpu, _cpu_seconds(server) - server_cpu if s3 else 0.0)


def _cpu_seconds(server) -> float:
    """CPU seconds the moto server process has used (Linux's /proc; 0 where there is none)."""
    try:
        fields = Path(f"/proc/{server._proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, AttributeError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


@contextmanager
def _counted_gets(uri: str | None):
    """A list that grows by one per GET this process makes to ``uri``'s bucket inside the block (the
    client's own count; the client outlives the block, the counter does not)."""
    gets: list[int] = []
    if uri is None:
        yield gets
        return
    client = reading._state.places.store(uri.split("/")[2]).client
    count = lambda **_: gets.append(1)  # noqa: E731
    client.meta.events.register("after-call.s3.GetObject", count)
    try:
        yield gets
    finally:
        client.meta.events.unregister("after-call.s3.GetObject", count)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=120, help="frames in all (full HD)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--frame", type=int, nargs=2, default=[1920, 1080], metavar=("W", "H"))
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        per_class = max(1, args.images // len(TARGETS))
        data = generate_synthetic(
            root / "d", per_class=per_class, users=4, frame_size=tuple(args.frame), targets=TARGETS
        )
        zips = tutorial_zips(data, root / "zips")
        server = MotoServer()
        server.start()
        try:
            os.environ.update(server.env())
            client = server.client()
            bucket = server.create_bucket("bench")
            for name in ("dataset", "annotations"):
                client.upload_file(str(zips[name]), bucket, f"data/{zips[name].name}")
            s3 = S3Settings(endpoint_url=server.endpoint_url)
            forms = {
                "extracted files": (data["annotations"], data["dataset"], None),
                "local zip": (str(zips["annotations"]), str(zips["dataset"]), None),
                "S3 zip (moto, loopback)": (
                    f"s3://{bucket}/data/subsample-annotations.zip",
                    f"s3://{bucket}/data/subsample.zip",
                    s3,
                ),
            }
            for annotations, dataset, settings in forms.values():  # warm-up: imports, first decodes
                prepare_round(annotations, dataset, settings, root, server)
            best: dict[str, Round] = {}
            for _ in range(args.repeats):  # round robin: a busy moment on a shared machine hits every form
                for name, (annotations, dataset, settings) in forms.items():
                    found = prepare_round(annotations, dataset, settings, root, server)
                    best[name] = max(best.get(name, found), found, key=lambda r: r.rate)
        finally:
            server.stop()
            sources.activate()
    _report(best, per_class * len(TARGETS), args.frame)


def _report(best: dict[str, Round], frames: int, frame: list[int]) -> None:
    base = best["extracted files"].rate
    print(f"prepare from {frames} frames of {frame[0]} x {frame[1]}, one core:")
    for name, found in best.items():
        print(f"{name:<26} {found.rate:7.1f} frames/s/core  x{found.rate / base:.2f} vs extracted")
    print("best rounds: wall s, CPU s of this process, CPU s of the S3 server (moto)")
    for name, found in best.items():
        print(f"{name:<26} {found.wall:6.2f} {found.cpu:6.2f} {found.server_cpu:6.2f}")
    for name, found in best.items():
        if found.gets:  # how many requests the frames cost: neighbouring members share a ranged GET
            print(f"{name}: {found.gets} GETs for the frames")
    worst = min(found.rate / base for name, found in best.items() if name != "extracted files")
    print(f"archives vs extracted: x{worst:.2f} (target >= 0.90): {'met' if worst >= 0.9 else 'missed'}")


if __name__ == "__main__":
    main()
