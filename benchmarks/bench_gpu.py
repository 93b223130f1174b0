"""GPU training throughput: the flow with its real data path vs a bare PyTorch loop on device-resident data.

    python benchmarks/bench_gpu.py --out gpu.json                      # on a GPU machine: one run does it all
    .venv/bin/python benchmarks/bench_gpu.py --quick --out /tmp/gpu.json  # CPU smoke run, under a minute

Writes synthetic 1920x1080 HaGRID-format JPEGs (one process per gesture), then per model (default ResNet18
and MobileNetV3_small at 224 px):
- flow: `train-hand-gesture-classifier` (flows/train.py) with the crop cache (dataset.cache_dir=<temp>,
  prepared by the first model's run and reused by the next), --num-workers loader workers, and what the
  library does on CUDA (AMP autocast in bf16 where supported, else fp16 with a scaler; channels_last).
  `--path library` calls run_training instead; taken automatically where prefect is not installed.
- bare: the same model from handgesture.models, same batch size, optimizer, AMP dtype and channels_last,
  on random uint8 batches already in device memory, preprocessed like the library (models.preprocess).
Throughput is steady state: the library reports no timings, so steps are timed from inside its loop
(benchlib.TrainingClock) and the flow figure is images / training-pass seconds over epochs 2..N (epoch 1
has the cuDNN autotuning and worker start-up; validation is not counted). With one epoch, its first
--warmup-steps steps are left out instead. The bare loop runs --warmup-steps, then --bare-steps timed,
synchronised at both ends; unlike the library's loop it reads no loss back per step, so it is the ceiling.
Both run with deterministic=false (cudnn.benchmark on) unless --deterministic: configs/default.yaml says true.
Target: flow >= 90% of bare. Results also go to --out as JSON, rewritten after each model.
Needs the package's dependencies (omegaconf; prefect for the flow); the repository's src/ is put on sys.path
when the package is not installed.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import os
import platform
import tempfile
import time
from pathlib import Path

import benchlib

benchlib.setup_env()  # before anything imports prefect

import torch  # noqa: E402

from handgesture.config import flow_overrides, load_config  # noqa: E402
from handgesture.metrics import HEADS  # noqa: E402
from handgesture.models import build_model, preprocess  # noqa: E402
from handgesture.training.engine import autocast_dtype  # noqa: E402
from handgesture.training.setup import seed_everything  # noqa: E402

TARGET = 0.90
NUM_CLASSES = 19  # the default targets: 18 gestures and no_gesture


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--models", nargs="+", default=["ResNet18", "MobileNetV3_small"])
    parser.add_argument("--size", type=int, default=224, help="crop size in pixels")
    parser.add_argument(
        "--images", type=int, default=2000, help="synthetic 1920x1080 frames (~1.5 samples each)"
    )
    parser.add_argument("--epochs", type=int, default=6, help="flow epochs; epoch 1 is warm-up")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--num-workers", type=int, default=8)
    parser.add_argument("--warmup-steps", type=int, default=20, help="bare loop (and one-epoch flow) warm-up")
    parser.add_argument("--bare-steps", type=int, default=200, help="timed bare-loop steps")
    parser.add_argument("--deterministic", action="store_true", help="config's deterministic=true (slower)")
    parser.add_argument("--path", default="flow", choices=["flow", "library"])
    parser.add_argument("--quick", action="store_true", help="tiny CPU smoke run of the whole script")
    parser.add_argument("--out", required=True, help="JSON results file")
    args = parser.parse_args()
    if args.quick:
        args.size, args.images, args.epochs, args.batch_size = 64, 72, 2, 8
        args.num_workers, args.warmup_steps, args.bare_steps = 2, 2, 6
    return args


def environment(device: torch.device) -> dict:
    info = {"torch": torch.__version__, "python": platform.python_version(), "device": str(device)}
    if device.type == "cuda":
        info.update(
            gpu=torch.cuda.get_device_name(device),
            cuda=torch.version.cuda,
            cudnn=torch.backends.cudnn.version(),
            bf16=torch.cuda.is_bf16_supported(),
        )
    info["cpus"] = os.cpu_count()
    return info


def flow_throughput(args, model: str, overrides: list[str], storage: str, clock) -> dict:
    """Train `model` through the flow (or run_training); steady-state images/s from inside its loop."""
    overrides = [*overrides, f"model.name={model}"]
    mark, start = len(clock.epochs), time.perf_counter()
    if args.path == "flow":
        from flows.train import train_hand_gesture_classifier

        train_hand_gesture_classifier(overrides=overrides, storage=storage)
    else:
        from handgesture.training import run_training

        run_training(load_config(None, flow_overrides(overrides, storage)))
    epochs = clock.since(mark)
    if len(epochs) > 1:
        images, seconds = sum(e.images for e in epochs[1:]), sum(e.seconds for e in epochs[1:])
        measured = f"epochs 2..{len(epochs)}" if len(epochs) > 2 else "epoch 2"
    else:  # one epoch: from the end of warm-up step K to the last step
        k = max(0, min(args.warmup_steps, len(epochs[0].steps) - 2))
        (t0, p0), (t1, p1) = epochs[0].steps[k], epochs[0].steps[-1]
        images, seconds, measured = p1 - p0, t1 - t0, f"steps {k + 2}..{len(epochs[0].steps)} of epoch 1"
    return {
        "images_per_s": images / seconds,
        "measured": measured,
        "images": images,
        "seconds": seconds,
        "first_epoch_images_per_s": epochs[0].images / epochs[0].seconds,
        "call_to_first_step_s": epochs[0].steps[0][0] - start,
        "epochs": [{"images": e.images, "train_seconds": e.seconds} for e in epochs],
    }


def bare_throughput(args, model_name: str, device: torch.device) -> dict:
    """The same model and step on device-resident random uint8 batches: the ceiling for the flow."""
    config = load_config()  # optimizer and AMP settings as the flow's run resolves them
    seed_everything(0, args.deterministic)
    model = build_model(model_name, NUM_CLASSES, image_size=args.size).to(device)
    channels_last = device.type == "cuda"  # as assemble.build_trainer and engine._to_device do
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    opt = config.optimizer
    optimizer = torch.optim.SGD(
        model.parameters(), lr=opt.lr, momentum=opt.momentum, weight_decay=opt.weight_decay
    )
    amp = config.train_params.amp and device.type == "cuda"
    scaler = torch.amp.GradScaler(device.type, enabled=amp and not torch.cuda.is_bf16_supported())
    shape = (args.batch_size, 3, args.size, args.size)
    batches = [torch.randint(0, 256, shape, dtype=torch.uint8, device=device) for _ in range(4)]
    targets = {"gesture": NUM_CLASSES, "leading_hand": 2}
    labels = {h: torch.randint(0, n, (args.batch_size,), device=device) for h, n in targets.items()}
    loss_fn = torch.nn.CrossEntropyLoss()
    model.train()

    def step(i: int) -> None:
        images = preprocess(batches[i % len(batches)])
        if channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        with torch.autocast(device.type, dtype=autocast_dtype(device), enabled=amp):
            outputs = model(images)
            loss = sum(loss_fn(outputs[h].float(), labels[h]) for h in HEADS)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()

    for i in range(args.warmup_steps):
        step(i)
    synchronize(device)
    start = time.perf_counter()
    for i in range(args.bare_steps):  # no per-step .item(): the loop never waits for the GPU
        step(i)
    synchronize(device)
    seconds = time.perf_counter() - start
    return {"images_per_s": args.bare_steps * args.batch_size / seconds, "steps": args.bare_steps}


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def run_overrides(args, dataset: dict, cache_dir: Path) -> list[str]:
    return [
        *benchlib.data_overrides(dataset),
        f"dataset.cache_dir={cache_dir}",
        f"dataset.image_size=[{args.size},{args.size}]",
        f"device={args.device}",
        f"deterministic={str(args.deterministic).lower()}",
        f"train_params.epochs={args.epochs}",
        f"train_params.train_batch_size={args.batch_size}",
        f"train_params.num_workers={args.num_workers}",
        "storage.experiment=bench-gpu",
    ]


def main() -> None:
    args = parse_args()
    if args.path == "flow" and importlib.util.find_spec("prefect") is None:
        # One GPU run should still bring numbers back: the library path, clearly labelled as such.
        print("prefect is not importable here: measuring --path library (run_training) instead of the flow")
        args.path = "library"
    device = torch.device(args.device)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        # Generated before anything touches CUDA: the generator's worker processes are forked.
        start = time.perf_counter()
        dataset = benchlib.make_dataset(
            root / "data",
            per_class=math.ceil(args.images / 18),
            frame_size=(1920, 1080),
            workers=os.cpu_count(),
        )
        generated = {"frames": dataset["images"], "generate_s": time.perf_counter() - start}
        results = {"args": vars(args), "environment": environment(device), "dataset": generated}
        results.update(target=TARGET, models={})
        print(json.dumps(results["environment"]), f"\n{benchlib.load_note()}", flush=True)
        overrides = run_overrides(args, dataset, root / "cache")
        with benchlib.TrainingClock() as clock:
            for model in args.models:
                flow = flow_throughput(args, model, overrides, str(root / "runs"), clock)
                bare = bare_throughput(args, model, device)
                ratio = flow["images_per_s"] / bare["images_per_s"]
                results["models"][model] = {"flow": flow, "bare": bare, "ratio": ratio}
                Path(args.out).write_text(json.dumps(results, indent=1))  # after each model: partial results
                print(
                    f"{model}: {args.path} {flow['images_per_s']:.0f} img/s, bare {bare['images_per_s']:.0f}"
                )
    report(args, results)


def report(args, results: dict) -> None:
    env = results["environment"]
    print(f"\n{env.get('gpu', env['device'])}, torch {env['torch']}, CUDA {env.get('cuda')}; {args.size} px, "
          f"batch {args.batch_size}, {args.num_workers} workers, {results['dataset']['frames']} frames, "
          f"deterministic={args.deterministic}; {benchlib.load_note()}")  # fmt: skip
    headers = ["model", f"{args.path} img/s", "measured over", "bare img/s", f"{args.path}/bare", "target"]
    rows = []
    for model, r in results["models"].items():
        verdict = "met" if r["ratio"] >= TARGET else "NOT met"
        flow, bare = r["flow"]["images_per_s"], r["bare"]["images_per_s"]
        rows.append([model, f"{flow:.0f}", r["flow"]["measured"], f"{bare:.0f}", f"{r['ratio']:.3f}",
                     f">= {TARGET}: {verdict}"])  # fmt: skip
    print(benchlib.table(headers, rows))
    rows = [[m, f"{r['flow']['first_epoch_images_per_s']:.0f}", f"{r['flow']['call_to_first_step_s']:.1f}"]
            for m, r in results["models"].items()]  # fmt: skip
    print(benchlib.table(["model", "epoch 1 img/s", "call -> first step s"], rows))
    print(f"results written to {args.out}")


if __name__ == "__main__":
    main()
