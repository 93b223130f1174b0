"""CPU prediction throughput: PyTorch eager vs the TorchScript and ONNX files `handgesture export` writes.

    .venv/bin/python benchmarks/bench_predict.py [--models ResNet18 MobileNetV3_small] [--size 224]
        [--batch-size 32] [--seconds 2] [--repeats 3] [--threads N]

Per model (randomly initialised, 19 classes, --size px): export to TorchScript and ONNX with
handgesture.export (each file verified against the PyTorch model), then time each runtime on the same random
uint8 NHWC batch, the packaged input, preprocessing included:
- eager: export.PackagedModel under torch.inference_mode
- torchscript: the exported file, torch.jit.load, under torch.inference_mode
- onnxruntime: the exported file, CPUExecutionProvider, graph optimisations at their default (all)
Each runs --warmup batches first (TorchScript's profiling executor optimises the graph over its first calls),
then batches until --seconds have passed; --repeats passes go round the runtimes in turn and the median pass
is shown, so a burst of load elsewhere hits all runtimes alike. Both libraries get --threads intra-op threads
(default: all cores), one process; images/s is batches x batch size / seconds, with the median ms per batch.
On a 2-core machine any other busy process slows multi-threaded inference several times over (the threads
wait for each other): the load average is printed before and after.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import benchlib

benchlib.setup_env()  # the source tree on sys.path where the package is not installed

import onnxruntime  # noqa: E402
import torch  # noqa: E402

from handgesture.export import DEFAULT_OUT, PackagedModel, export_model  # noqa: E402
from handgesture.inference import LoadedModel  # noqa: E402
from handgesture.labels import HAGRID_TARGETS  # noqa: E402
from handgesture.models import build_model  # noqa: E402

# torch.jit is deprecated in torch 2.14; loading the TorchScript file warns once per load.
warnings.filterwarnings("ignore", message=r"`torch\.jit", category=FutureWarning)

Predict = Callable[[torch.Tensor], object]
SERVED = ("torchscript", "onnx")  # the formats a server loads (weights need PyTorch and our classes)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["ResNet18", "MobileNetV3_small"])
    parser.add_argument("--size", type=int, default=224, help="image size in pixels (square)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=2.0, help="timed seconds per figure and pass")
    parser.add_argument("--repeats", type=int, default=3, help="interleaved passes per runtime; median shown")
    parser.add_argument("--warmup", type=int, default=3, help="untimed batches before each measurement")
    parser.add_argument("--threads", type=int, default=os.cpu_count(), help="intra-op threads per library")
    return parser.parse_args()


def predictors(name: str, size: int, threads: int, folder: Path) -> dict[str, Predict]:
    """The three ways to run one randomly initialised model on a uint8 NHWC batch."""
    torch.manual_seed(0)
    model = build_model(name, len(HAGRID_TARGETS), image_size=size).eval()
    loaded = LoadedModel(model, list(HAGRID_TARGETS), [size, size], name, "memory", 0, {}, "0" * 64)
    files = {fmt: export_model(loaded, None, fmt, folder / name / DEFAULT_OUT[fmt]).path for fmt in SERVED}
    eager, scripted = PackagedModel(model).eval(), torch.jit.load(str(files["torchscript"]))
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
    session = onnxruntime.InferenceSession(str(files["onnx"]), options, providers=["CPUExecutionProvider"])
    return {
        "eager": inference_mode(eager),
        "torchscript": inference_mode(scripted),
        "onnxruntime": lambda images: session.run(None, {"images": images.numpy()}),
    }


def inference_mode(module: torch.nn.Module) -> Predict:
    def predict(images: torch.Tensor) -> object:
        with torch.inference_mode():
            return module(images)

    return predict


def measure(predict: Predict, images: torch.Tensor, seconds: float) -> tuple[float, float]:
    """(images per second, median ms per batch) over batches until `seconds` have passed."""
    times: list[float] = []
    start = time.perf_counter()
    while not times or time.perf_counter() - start < seconds:
        begin = time.perf_counter()
        predict(images)
        times.append(time.perf_counter() - begin)
    return len(times) * len(images) / (time.perf_counter() - start), 1000 * statistics.median(times)


def main() -> None:
    args = parse_args()
    torch.set_num_threads(args.threads)
    print(
        f"CPU: {os.cpu_count()} cores, {args.threads} intra-op threads; torch {torch.__version__}, "
        f"onnxruntime {onnxruntime.__version__}; batch {args.batch_size} uint8 NHWC {args.size}x{args.size}, "
        f"{args.warmup} warm-up batches, median of {args.repeats} passes of {args.seconds:g} s; "
        f"before: {benchlib.load_note()}"
    )
    images = torch.randint(0, 256, (args.batch_size, args.size, args.size, 3), dtype=torch.uint8)
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-predict-") as tmp:
        for name in args.models:
            start = time.perf_counter()
            runtimes = predictors(name, args.size, args.threads, Path(tmp))
            print(f"{name}: exported and verified both files in {time.perf_counter() - start:.1f} s")
            rows += model_rows(name, runtimes, images, args)
    print(benchlib.table(["model", "runtime", "images/s", "ms/batch (median)", "vs eager"], rows))
    print(f"after: {benchlib.load_note()}")


def model_rows(name: str, runtimes: dict[str, Predict], images: torch.Tensor, args) -> list[list[str]]:
    for predict in runtimes.values():
        for _ in range(args.warmup):
            predict(images)
    passes = {runtime: [] for runtime in runtimes}
    for _ in range(args.repeats):
        for runtime, predict in runtimes.items():
            passes[runtime].append(measure(predict, images, args.seconds))
    eager_rate = median_pass(passes["eager"])[0]
    rows = []
    for runtime, results in passes.items():
        rate, ms = median_pass(results)
        rows.append([name, runtime, f"{rate:.1f}", f"{ms:.1f}", f"x{rate / eager_rate:.2f}"])
    return rows


def median_pass(results: list[tuple[float, float]]) -> tuple[float, float]:
    """The pass with the median images/s (the upper one of two): its figures stay from one pass."""
    return sorted(results)[len(results) // 2]


if __name__ == "__main__":
    main()
