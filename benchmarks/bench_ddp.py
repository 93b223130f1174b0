"""Data-parallel overhead on CPU: 2 gloo ranks vs 1 process at the same per-device batch.

    .venv/bin/python benchmarks/bench_ddp.py [--model ResNet18] [--per-class 40] [--reps 2] [--batch-size 32]

One rank per core, one torch thread each (what torchrun sets), so on 2 cores the ideal is 2 ranks stepping
as fast as 1 process: each step then trains twice the samples. The time per step comes from the difference
between a 3-epoch and a 1-epoch run of the same config (start-up, the launcher and the first epoch's warm-up
cancel out); it includes each epoch's share of validation, sharded across the ranks too.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import benchlib

benchlib.setup_env()
os.environ["OMP_NUM_THREADS"] = "1"  # the single process gets one core, as each rank does

import torch  # noqa: E402

from handgesture.config import load_config  # noqa: E402
from handgesture.training import run_training  # noqa: E402


def epoch_run(overrides: list[str], epochs: int, name: str) -> tuple[float, int]:
    config = load_config("configs/demo.yaml", [*overrides, f"train_params.epochs={epochs}"])
    start = time.perf_counter()
    summary = run_training(config, run_name=name)
    return time.perf_counter() - start, summary.global_step


def seconds_per_step(overrides: list[str], reps: int, tag: str) -> tuple[float, int]:
    per_step, steps = [], 0
    for rep in range(reps):
        one, steps_one = epoch_run(overrides, 1, f"{tag}-1-{rep}")
        three, steps_three = epoch_run(overrides, 3, f"{tag}-3-{rep}")
        steps = steps_one
        per_step.append((three - one) / (steps_three - steps_one))
    return statistics.median(per_step), steps


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--per-class", type=int, default=40, help="synthetic frames per gesture")
    parser.add_argument("--reps", type=int, default=2)
    parser.add_argument("--model", default="ResNet18")
    parser.add_argument(
        "--batch-size",
        type=int,
        default=32,
        help="images per device (each rank's batch); the training split must hold one global batch",
    )
    args = parser.parse_args()
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        data = benchlib.make_dataset(Path(tmp) / "data", per_class=args.per_class)
        base = [
            *benchlib.data_overrides(data),
            f"dataset.cache_dir={tmp}/cache",
            f"storage.uri={tmp}/runs",
            f"model.name={args.model}",
            "dataset.image_size=[64,64]",
            f"train_params.train_batch_size={args.batch_size}",
            "train_params.num_workers=0",
            "tracking.tensorboard=false",
        ]
        single, steps_single = seconds_per_step(base, args.reps, "one")
        ranks, steps_ranks = seconds_per_step([*base, "train_params.devices=2"], args.reps, "two")
    batch = args.batch_size
    print(f"{args.model} at 64 px, {batch} per device, median of {args.reps}, 1 torch thread per process")
    for name, seconds, steps, images in (
        ("1 process", single, steps_single, batch),
        ("2 ranks", ranks, steps_ranks, 2 * batch),
    ):
        print(
            f"{name:10s}: {seconds * 1000:7.1f} ms per step, {steps} steps per epoch, "
            f"{images / seconds:6.1f} img/s"
        )
    print(
        f"overhead per step: {100 * (ranks / single - 1):+.1f}% (2 ranks vs 1 process, same per-device batch)"
    )


if __name__ == "__main__":
    main()
