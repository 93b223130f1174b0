"""Checkpointing overhead: mean step time with a checkpoint every N steps, to local disk and to S3, vs none.

    .venv/bin/python benchmarks/bench_checkpointing.py [--every 40 10] [--stores local s3] [--reps 2]
        [--per-class 60] [--model ResNet18] [--size 64] [--batch-size 16] [--epochs 1] [--dir /fast/disk]

Trains `run_training` (the library; the flow adds nothing to checkpointing) on a synthetic dataset, once per
variant and repetition, order alternating: no periodic checkpoint (local disk), and `checkpoint.every_n_steps`
= each --every value to local disk and to s3:// on a local moto_server. Step times come from inside the loop
(benchlib.TrainingClock; the first step of each epoch, loader start-up, left out); TensorBoard is off so
checkpoints are the only difference. Target: at most 3% slower at the default interval
(configs/default.yaml's checkpoint.every_n_steps / every_seconds, printed). For the checkpoint steps it also
reports how long the step was blocked (Committer.commit) against the parts of a commit measured on the same
state after the run: building the state dict, torch.save to BytesIO, sha256; and, for S3, how long each
background upload took, to show the step does not wait for it.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import shutil
import tempfile
import time
from pathlib import Path

import benchlib

benchlib.setup_env()  # before anything imports prefect (the S3 store uses prefect-aws)

from handgesture.checkpoints.format import to_bytes  # noqa: E402
from handgesture.config import load_config  # noqa: E402
from handgesture.storage.s3 import S3Store  # noqa: E402
from handgesture.training import run_training  # noqa: E402
from handgesture.training.committer import Committer  # noqa: E402

TARGET = 1.03
BUCKET = "bench-checkpoints"


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--every", type=int, nargs="+", default=[40, 10], help="checkpoint every N steps")
    parser.add_argument("--stores", nargs="+", default=["local", "s3"], choices=["local", "s3"])
    parser.add_argument("--reps", type=int, default=2)
    parser.add_argument("--per-class", type=int, default=60, help="synthetic frames per gesture")
    parser.add_argument("--model", default="ResNet18")
    parser.add_argument("--size", type=int, default=64, help="crop size in pixels")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--num-workers", type=int, default=0, help="loader workers (0: least noise)")
    parser.add_argument("--dir", help="folder for data and local checkpoints (default: a temp folder)")
    return parser.parse_args()


def train(overrides: list[str], clock: benchlib.TrainingClock, server=None) -> dict:
    """One run; its step times, each commit's blocked time, the committer, S3 upload and server CPU times."""
    mark, server_cpu = len(clock.epochs), server.cpu_seconds() if server else 0.0
    with (
        benchlib.call_times(Committer, "commit") as commits,
        benchlib.call_times(S3Store, "put_file") as uploads,
    ):
        run_training(load_config(None, overrides))
    epochs = clock.since(mark)
    intervals = [s for epoch in epochs for s in epoch.step_intervals()]
    return {
        "step": sum(intervals) / len(intervals),  # the mean: checkpoint steps are the slow outliers
        "median": benchlib.median(intervals),
        # Time above the run's own typical step: what its checkpoints cost, free of drift between runs.
        "excess": sum(intervals) - len(intervals) * benchlib.median(intervals),
        "slowest": max(intervals),
        "steps": sum(len(epoch.steps) for epoch in epochs),
        # Mid-epoch commits carry no metrics; the epoch-end one (outside the timed steps) does.
        "blocked": [seconds for _, seconds, args in commits if not args[1]],
        "committer": commits[-1][2][0],
        "uploads": [s for _, s, args in uploads if str(args[2]).startswith("checkpoints/")],
        # On this machine the server shares the training cores; a real S3 endpoint would not.
        "server_cpu": server.cpu_seconds() - server_cpu if server else 0.0,
    }


def commit_parts(committer: Committer, tries: int = 3) -> dict[str, float]:
    """The pieces of a commit, timed on the run's final state (same tensors and sizes as at its steps)."""
    parts: dict[str, list[float]] = {"build": [], "torch.save": [], "sha256": []}
    for _ in range(tries):
        t0 = time.perf_counter()
        state = committer.dump({})
        t1 = time.perf_counter()
        data = to_bytes(state)
        t2 = time.perf_counter()
        hashlib.sha256(data).hexdigest()
        t3 = time.perf_counter()
        for name, seconds in zip(parts, (t1 - t0, t2 - t1, t3 - t2), strict=True):
            parts[name].append(seconds)
    return {"size_mb": len(data) / 1e6, **{k: benchlib.median(v) for k, v in parts.items()}}


def variants(args, server, root: Path) -> dict[str, list[str]]:
    """name -> storage and checkpoint overrides."""
    stores = {"local": [f"storage.uri={root / 'runs'}"]}
    if server:
        stores["s3"] = [f"storage.uri=s3://{BUCKET}/runs", f"storage.endpoint_url={server.endpoint}"]
    out = {"none (local)": [*stores["local"], "checkpoint.every_n_steps=0"]}
    for store in args.stores:
        for n in args.every:
            out[f"{store} every {n}"] = [*stores[store], f"checkpoint.every_n_steps={n}"]
    return out


def main() -> None:
    args = parse_args()
    print(benchlib.load_note())
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        root = Path(tmp)
        dataset = benchlib.make_dataset(root / "data", per_class=args.per_class)
        common = [
            *benchlib.data_overrides(dataset),
            f"dataset.image_size=[{args.size},{args.size}]",
            f"model.name={args.model}",
            f"train_params.epochs={args.epochs}",
            f"train_params.train_batch_size={args.batch_size}",
            f"train_params.num_workers={args.num_workers}",
            "checkpoint.every_seconds=0",
            "dataset.cache_dir=null",  # frames decoded each epoch: no cache preparation in the first run
            "tracking.tensorboard=false",
            "storage.experiment=bench",
        ]
        s3 = benchlib.moto_server(BUCKET) if "s3" in args.stores else contextlib.nullcontext(None)
        with s3 as server, benchlib.TrainingClock() as clock:
            names = variants(args, server, root)
            # Untimed: a few steps of the same model first, so no variant pays the process's first-use costs.
            train([*common, *names["none (local)"], f"dataset.subset={max(2, args.batch_size // 4)}"], clock)
            runs: dict[str, list[dict]] = {}
            for rep in range(args.reps):
                # Alternating order, so drift in machine load hits every variant alike.
                for name in list(names) if rep % 2 == 0 else list(names)[::-1]:
                    runs.setdefault(name, []).append(train([*common, *names[name]], clock, server))
                    shutil.rmtree(root / "runs", ignore_errors=True)  # ~100 MB per checkpoint kept
                    print(f"rep {rep} {name:16s} mean step {runs[name][-1]['step'] * 1e3:.1f} ms", flush=True)
            parts = commit_parts(runs["none (local)"][-1]["committer"])
    report(args, runs, parts)


def row(name: str, reps: list[dict], base: float, noise: float) -> list:
    """One variant's line: medians over its repetitions."""
    step, blocked = benchlib.median(r["step"] for r in reps), [b for r in reps for b in r["blocked"]]
    every, per_run = name.rsplit(" ", 1)[-1], len(blocked) / len(reps)
    return [
        name,
        step * 1e3,
        f"{step / base:.3f}",
        benchlib.median(r["median"] for r in reps) * 1e3,
        max(r["slowest"] for r in reps) * 1e3,
        f"{int(every) * base:.1f}" if every.isdigit() else "-",
        f"{per_run:.0f}",
        f"{(benchlib.median(r['excess'] for r in reps) - noise) / per_run:.2f}" if blocked else "-",
        f"{benchlib.median(blocked) * 1e3:.0f}, {max(blocked) * 1e3:.0f}" if blocked else "-",
        f"{benchlib.median(r['server_cpu'] for r in reps):.1f}" if name.startswith("s3") else "-",
    ]


def at_default_interval(runs: dict[str, list[dict]], noise: float, every_seconds: float) -> str:
    """The overhead at the default time interval, from each store's measured cost per checkpoint."""
    lines = [f"at the default interval (one checkpoint every {every_seconds:g} s):"]
    for store in ("local", "s3"):
        costs = []
        for name, reps in runs.items():
            blocked = [b for r in reps for b in r["blocked"]]
            if name.startswith(f"{store} every") and blocked:
                per_run = len(blocked) / len(reps)
                costs.append((benchlib.median(r["excess"] for r in reps) - noise) / per_run)
        if costs:
            cost = max(costs)  # the worse of the measured intervals
            verdict = "met" if 1 + cost / every_seconds <= TARGET else "NOT met"
            share = 100 * cost / every_seconds
            lines.append(
                f"  {store}: {cost:.2f} s per checkpoint / {every_seconds:g} s = {share:.2f}% slower "
                f"(target <= {100 * (TARGET - 1):.0f}%: {verdict})"
            )
    return "\n".join(lines)


def report(args, runs: dict[str, list[dict]], parts: dict[str, float]) -> None:
    default = load_config().checkpoint
    print(
        f"\n{args.model} at {args.size} px, batch {args.batch_size}, {args.epochs} epoch(s) of "
        f"{runs['none (local)'][0]['steps'] // args.epochs} steps, {args.reps} reps; {benchlib.load_note()}"
    )
    periodic = default.every_n_steps > 0 or default.every_seconds > 0
    off = "" if periodic else " (no mid-epoch checkpoints by default)"
    print(
        f"configs/default.yaml: checkpoint.every_n_steps={default.every_n_steps}, "
        f"every_seconds={default.every_seconds:g}{off}"
    )
    base = benchlib.median(r["step"] for r in runs["none (local)"])
    noise = benchlib.median(r["excess"] for r in runs["none (local)"])
    headers = ["variant", "mean step ms", "vs none", "median step ms", "slowest ms", "s between ckpts"]
    headers += ["ckpts/run", "cost s/ckpt", "blocked ms (median, max)", "S3 server CPU s/run"]
    rows = [row(name, reps, base, noise) for name, reps in runs.items()]
    print(benchlib.table(headers, rows))
    print(f"target: at most {TARGET:.2f}x the step time with no periodic checkpoints at the default interval")
    print("cost s/ckpt: each run's time above its own median step, less that of 'none', per checkpoint; "
          "the overhead at one checkpoint every T seconds is about cost / T")  # fmt: skip

    if default.every_seconds > 0:
        print(at_default_interval(runs, noise, default.every_seconds))

    uploads = [u for reps in runs.values() for r in reps for u in r["uploads"]]
    print(f"\nthe same state, measured after the run ({parts['size_mb']:.1f} MB checkpoint):")
    rows = [
        ["build state (state_dict copies, RNG)", parts["build"] * 1e3],
        ["torch.save to BytesIO (pure serialisation)", parts["torch.save"] * 1e3],
        ["sha256 of the bytes", parts["sha256"] * 1e3],
        ["sum: the least a commit can block", (parts["build"] + parts["torch.save"] + parts["sha256"]) * 1e3],
    ]
    if uploads:
        rows.append(["S3 upload of one checkpoint, in the background", benchlib.median(uploads) * 1e3])
    print(benchlib.table(["part", "ms"], rows))


if __name__ == "__main__":
    main()
