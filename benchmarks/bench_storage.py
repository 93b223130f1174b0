"""Checkpoint upload/download throughput: the S3 store vs raw boto3, both against a local moto_server.

    .venv/bin/python benchmarks/bench_storage.py [--size-mb 230] [--reps 3] [--torch [--torch-model NAME]]

Writes a checkpoint-sized file (random bytes, or with --torch a real ``torch.save`` of a torchvision model's
state dict: ResNet-152's, 242 MB, unless --torch-model names another), then per repetition uploads and
downloads it through ``open_store("s3://...")`` and through a plain boto3 client (``upload_file`` /
``download_file``, default TransferConfig). Target: store >= 80% of raw.
moto keeps objects in memory, so this measures client overhead and concurrency, not a disk or network.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import benchlib

benchlib.setup_env()  # a temp PREFECT_HOME before the S3 store (prefect-aws) imports prefect

import boto3  # noqa: E402

from handgesture.storage import MiB, S3Settings, open_store, sha256_file  # noqa: E402

TARGET = 0.80
CREDS = {
    "AWS_ACCESS_KEY_ID": "bench",
    "AWS_SECRET_ACCESS_KEY": "bench-secret",
    "AWS_DEFAULT_REGION": "us-east-1",
}


def start_moto() -> tuple[subprocess.Popen, str]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    cmd = [str(Path(sys.executable).parent / "moto_server"), "-H", "127.0.0.1", "-p", str(port)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    endpoint = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            urllib.request.urlopen(f"{endpoint}/moto-api/", timeout=1).close()
            return proc, endpoint
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError(f"moto_server did not start on {endpoint}")


def make_checkpoint(path: Path, size_mb: int, torch_model: str | None) -> None:
    if torch_model:
        import torch
        import torchvision

        torch.save({"state_dict": torchvision.models.get_model(torch_model).state_dict()}, path)
    else:
        with open(path, "wb") as fh:
            for _ in range(size_mb):
                fh.write(os.urandom(1024 * 1024))


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=int, default=230)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--torch", action="store_true", help="a real torch.save of a model's state dict")
    parser.add_argument(
        "--torch-model",
        default="resnet152",
        help="the torchvision model whose state dict --torch saves (resnet152: 242 MB; a smaller one for a "
        "quick run, e.g. mobilenet_v3_small: 10 MB)",
    )
    parser.add_argument("--chunk-mb", type=int, default=S3Settings.multipart_chunksize // MiB)
    parser.add_argument("--concurrency", type=int, default=S3Settings.max_concurrency)
    args = parser.parse_args()
    os.environ.update(CREDS)
    proc, endpoint = start_moto()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            run(Path(tmp), endpoint, args)
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def run(tmp: Path, endpoint: str, args: argparse.Namespace) -> None:
    src = tmp / "checkpoint.pt"
    make_checkpoint(src, args.size_mb, args.torch_model if args.torch else None)
    size_mb = src.stat().st_size / 1e6
    raw = boto3.client("s3", endpoint_url=endpoint)
    raw.create_bucket(Bucket="bench")
    chunk = args.chunk_mb * MiB
    settings = S3Settings(
        endpoint_url=endpoint,
        multipart_threshold=chunk,
        multipart_chunksize=chunk,
        max_concurrency=args.concurrency,
    )
    store = open_store("s3://bench/runs", settings)
    store.put_bytes(b"warm-up", "warm-up")  # both clients made and connected before timing
    raw.put_object(Bucket="bench", Key="warm-up", Body=b"warm-up")
    ops = {
        "store upload": lambda: store.put_file(src, "store.pt"),
        "raw upload": lambda: raw.upload_file(str(src), "bench", "raw.pt"),
        "store download": lambda: store.get_file("store.pt", tmp / "store-dl.pt"),
        "raw download": lambda: raw.download_file("bench", "raw.pt", str(tmp / "raw-dl.pt")),
    }
    times: dict[str, list[float]] = {name: [] for name in ops}
    for rep in range(args.reps):  # interleaved, order alternating, so drift in load hits both alike
        for op in ("upload", "download"):
            pair = [f"store {op}", f"raw {op}"]
            for name in pair if rep % 2 == 0 else pair[::-1]:
                times[name].append(timed(ops[name]))
    digest = sha256_file(src)
    assert sha256_file(tmp / "store-dl.pt") == digest == sha256_file(tmp / "raw-dl.pt"), "corrupt download"

    print(
        f"object: {size_mb:.1f} MB ({f'torch.save {args.torch_model}' if args.torch else 'random bytes'}), "
        f"{args.reps} reps, store chunks {args.chunk_mb} MiB x {args.concurrency} threads, "
        f"moto_server at {endpoint}"
    )
    rates = {name: [size_mb / t for t in ts] for name, ts in times.items()}
    for name, mbps in rates.items():
        runs = ", ".join(f"{r:.0f}" for r in mbps)
        print(f"{name:15s} median {statistics.median(mbps):7.1f} MB/s   (runs: {runs})")
    for op in ("upload", "download"):
        ratio = statistics.median(rates[f"store {op}"]) / statistics.median(rates[f"raw {op}"])
        verdict = "OK" if ratio >= TARGET else "BELOW TARGET"
        print(f"{op:8s} store/raw = {ratio:.2f}  (target >= {TARGET:.2f}: {verdict})")


if __name__ == "__main__":
    main()
