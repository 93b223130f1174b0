"""Prepare throughput per core by where the frames live: extracted files, a local zip, a zip on S3.

One dataset of full-HD synthetic frames is written three ways: extracted (``images/<gesture>/<id>.jpg``),
the tutorial's ``subsample.zip`` beside it, and that zip uploaded to a moto S3 server on 127.0.0.1. Each
round reads the annotations and prepares the crop cache in one process (``workers=0``: one core) from a cold
start (`sources.activate`: central directories read again), and the best of ``--repeats`` rounds is kept.
The figure is frames per second per core, and each source's ratio to the extracted files (target >= 0.9).

    .venv/bin/python benchmarks/bench_sources.py --images 120 --repeats 3
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from contextlib import contextmanager
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


def prepare_rate(annotations: str, dataset: str, s3: S3Settings | None, scratch: Path) -> tuple[float, int]:
    """(frames per second, S3 GETs for the frames) of one cold prepare: annotations read, every frame
    decoded, crops written."""
    sources.activate(s3)
    start = time.perf_counter()
    samples = read_annotations(annotations, dataset, TARGETS).samples
    with _counted_gets(dataset if s3 else None) as gets:  # after the listing: the frames' GETs alone
        folder = Path(tempfile.mkdtemp(dir=scratch))
        unreadable = write_rows(samples, cache_settings((224, 224)), folder, workers=0)
    seconds = time.perf_counter() - start
    assert unreadable == 0, f"{unreadable} frames unreadable from {dataset}"
    return len({s.image for s in samples}) / seconds, len(gets)


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
            prepare_rate(*forms["extracted files"], root)  # warm-up: first decodes and encodes pay setup
            rates, gets = dict.fromkeys(forms, 0.0), dict.fromkeys(forms, 0)
            for _ in range(args.repeats):  # round robin: a busy moment on a shared machine hits every form
                for name, (annotations, dataset, settings) in forms.items():
                    rate, gets[name] = prepare_rate(annotations, dataset, settings, root)
                    rates[name] = max(rates[name], rate)
        finally:
            server.stop()
            sources.activate()
    base = rates["extracted files"]
    print(f"prepare from {per_class * len(TARGETS)} frames of {args.frame[0]} x {args.frame[1]}, one core:")
    for name, rate in rates.items():
        print(f"{name:<26} {rate:7.1f} frames/s/core  x{rate / base:.2f} vs extracted")
    for name, count in gets.items():
        if count:  # how many requests the frames cost: neighbouring members share a ranged GET
            print(f"{name}: {count} GETs for the frames")
    worst = min(rate / base for name, rate in rates.items() if name != "extracted files")
    print(f"archives vs extracted: x{worst:.2f} (target >= 0.90): {'met' if worst >= 0.9 else 'missed'}")


if __name__ == "__main__":
    main()
