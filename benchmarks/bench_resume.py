"""Resume latency: from calling the flow to the first training step, resuming from s3:// vs a fresh start.

    .venv/bin/python benchmarks/bench_resume.py [--reps 3] [--model ResNet18] [--size 64] [--per-class 20]

Starts a local moto_server, trains one epoch through the flow `train-hand-gesture-classifier` into
s3://<bucket>/runs (this also starts Prefect's ephemeral API, so the timed calls find it up), then per
repetition, order alternating, calls the flow (storage on the same S3 server) three ways: a fresh start of
epoch 1; a resume from the s3:// checkpoint with an empty local download cache (HANDGESTURE_CACHE, so the
checkpoint is downloaded and verified); and a resume whose cached copy is already there (verified by sha256,
not downloaded). Each trains one
epoch. Reported: time from the call to the end of the first training step (benchlib.TrainingClock), the
time spent in restore() and in its download, the difference to a fresh start, and the checkpoint's size.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import benchlib

benchlib.setup_env()  # before anything imports prefect

from flows.train import train_hand_gesture_classifier  # noqa: E402

import handgesture.checkpoints.locate  # noqa: E402
import handgesture.training.resume  # noqa: E402
from handgesture.checkpoints.run_folder import read_manifest  # noqa: E402
from handgesture.storage import S3Settings, open_store  # noqa: E402

BUCKET = "bench-resume"


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--model", default="ResNet18")
    parser.add_argument("--size", type=int, default=64, help="crop size in pixels")
    parser.add_argument("--per-class", type=int, default=20, help="synthetic frames per gesture")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--num-workers", type=int, default=2)
    return parser.parse_args()


def call_flow(overrides: list[str], storage: str, resume: str | None, cache: Path, clock) -> dict:
    """One flow call; the call->first-step time and what restore() and its download took."""
    os.environ["HANDGESTURE_CACHE"] = str(cache)  # read at each resolve: where s3:// checkpoints are cached
    mark = len(clock.epochs)
    with (
        benchlib.call_times(handgesture.training.resume, "restore") as restores,
        benchlib.call_times(handgesture.checkpoints.locate, "cached_download") as downloads,
    ):
        start = time.perf_counter()
        result = train_hand_gesture_classifier(overrides=overrides, resume=resume, storage=storage)
    epoch = clock.since(mark)[0]
    return {
        "first_step": epoch.steps[0][0] - start,
        "restore": sum(s for _, s, _ in restores),
        "download": sum(s for _, s, _ in downloads),
        "result": result,
    }


def checkpoint_size(uri: str, endpoint: str) -> float:
    """MB, from the run manifest's entry for the checkpoint."""
    run_uri, _, key_tail = uri.rpartition("/checkpoints/")
    manifest = read_manifest(open_store(run_uri, S3Settings(endpoint_url=endpoint)))
    entry = next(e for e in manifest["checkpoints"] if e["key"] == f"checkpoints/{key_tail}")
    return entry["size"] / 1e6


def main() -> None:
    args = parse_args()
    print(benchlib.load_note())
    with tempfile.TemporaryDirectory() as tmp, benchlib.moto_server(BUCKET) as server:
        root, endpoint = Path(tmp), server.endpoint
        dataset = benchlib.make_dataset(root / "data", per_class=args.per_class)
        overrides = [
            *benchlib.data_overrides(dataset),
            f"dataset.image_size=[{args.size},{args.size}]",
            f"model.name={args.model}",
            f"train_params.train_batch_size={args.batch_size}",
            f"train_params.num_workers={args.num_workers}",
            "dataset.cache_dir=null",  # frames decoded each epoch: every call prepares the same data
            f"storage.endpoint_url={endpoint}",
            "storage.experiment=bench",
        ]
        storage = f"s3://{BUCKET}/runs"
        with benchlib.TrainingClock() as clock:
            first = call_flow([*overrides, "train_params.epochs=1"], storage, None, root / "cache-0", clock)
            source = first["result"].last_checkpoint
            print(f"checkpoint to resume from: {source} (first flow call -> first step "
                  f"{first['first_step']:.1f} s, ephemeral server start included)", flush=True)  # fmt: skip
            runs = measure(args.reps, overrides, storage, source, root, clock)
        size = checkpoint_size(source, endpoint)
    report(args, runs, size)


def measure(reps: int, overrides: list[str], storage: str, source: str, root: Path, clock) -> dict:
    """Per repetition, order alternating: name -> (total epochs, resume URI, download cache folder)."""

    def plan(rep: int) -> dict[str, tuple]:
        return {
            "fresh start": (1, None, root / f"fresh-{rep}"),
            "resume, empty cache": (2, source, root / f"cold-{rep}"),
            # Rep 0 runs the empty-cache resume first, which fills cold-0 for every later cached one.
            "resume, cached copy": (2, source, root / "cold-0"),
        }

    runs: dict[str, list[dict]] = {name: [] for name in plan(0)}
    for rep in range(reps):
        for name in list(runs) if rep % 2 == 0 else list(runs)[::-1]:
            epochs, resume, cache = plan(rep)[name]
            over = [*overrides, f"train_params.epochs={epochs}"]
            runs[name].append(call_flow(over, storage, resume, cache, clock))
            print(f"rep {rep} {name:20s} call -> first step {runs[name][-1]['first_step']:.2f} s", flush=True)
    return runs


def report(args, runs: dict[str, list[dict]], size_mb: float) -> None:
    print(f"\n{args.model} at {args.size} px; checkpoint {size_mb:.1f} MB on a local moto_server; "
          f"{args.reps} reps; {benchlib.load_note()}")  # fmt: skip
    fresh = benchlib.median(r["first_step"] for r in runs["fresh start"])
    headers = ["start", "call -> 1st step s (median)", "vs fresh s", "restore s", "download s", "per rep"]
    rows = []
    for name, reps in runs.items():
        first_step = benchlib.median(r["first_step"] for r in reps)
        rows.append([
            name, first_step, f"{first_step - fresh:+.2f}",
            benchlib.median(r["restore"] for r in reps), benchlib.median(r["download"] for r in reps),
            ", ".join(f"{r['first_step']:.2f}" for r in reps),
        ])  # fmt: skip
    print(benchlib.table(headers, rows))


if __name__ == "__main__":
    main()
