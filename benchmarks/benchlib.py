"""Shared helpers for the benchmark scripts: an isolated Prefect environment, a local S3 server, a synthetic
dataset, timestamps taken from inside the training loop, and plain-text tables.

Nothing here imports torch or prefect at module level, so a script can time its own first imports.
"""

from __future__ import annotations

import atexit
import contextlib
import importlib.util
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
S3_CREDS = {
    "AWS_ACCESS_KEY_ID": "bench-access-key",
    "AWS_SECRET_ACCESS_KEY": "bench-secret-key",
    "AWS_DEFAULT_REGION": "us-east-1",
}


def setup_env() -> None:
    """The tests' Prefect settings (temp PREFECT_HOME, no analytics, room for the ephemeral server to start),
    before anything imports prefect; and the source tree on sys.path where the package is not installed (a
    bare GPU machine)."""
    home = os.environ.get("BENCH_PREFECT_HOME")  # a benchmark's worker processes share their parent's
    if home is None:
        home = os.environ["BENCH_PREFECT_HOME"] = tempfile.mkdtemp(prefix="bench-prefect-home-")
        atexit.register(shutil.rmtree, home, ignore_errors=True)  # gone when the benchmark ends
    os.environ.update(
        {
            "PREFECT_HOME": home,
            "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120",
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "DO_NOT_TRACK": "1",
            "PREFECT_LOGGING_EXTRA_LOGGERS": "handgesture",
        }
    )
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    if importlib.util.find_spec("handgesture") is None:
        sys.path[:0] = [str(REPO / "src"), str(REPO)]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class S3Server:
    endpoint: str
    pid: int

    def cpu_seconds(self) -> float:
        return process_cpu_seconds(self.pid)


def process_cpu_seconds(pid: int) -> float:
    """CPU time a process has used so far (Linux /proc): what a server on this machine takes from training."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


@contextlib.contextmanager
def moto_server(bucket: str) -> Iterator[S3Server]:
    """A local S3-compatible server (as tests/s3_fixtures.py starts it) holding an empty `bucket`.

    Dummy credentials go into this process's environment, for the default AWS credential chain."""
    for name in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL"):
        os.environ.pop(name, None)
    os.environ.update(S3_CREDS)
    os.environ["AWS_EC2_METADATA_DISABLED"] = "true"
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    cmd = [str(Path(sys.executable).parent / "moto_server"), "-H", "127.0.0.1", "-p", str(port)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_for(f"{endpoint}/moto-api/", proc)
        import boto3

        boto3.client("s3", endpoint_url=endpoint).create_bucket(Bucket=bucket)
        yield S3Server(endpoint, proc.pid)
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def _wait_for(url: str, proc: subprocess.Popen, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"moto_server exited with {proc.returncode}")
        try:
            urllib.request.urlopen(url, timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"moto_server did not answer on {url} within {timeout:.0f} s")


def make_dataset(root: Path, *, per_class: int, frame_size=(320, 240), users: int = 10, workers: int = 1):
    """A synthetic HaGRID-format dataset under `root`; with workers > 1, one process per gesture.

    Returns generate_synthetic's dict (annotations, dataset, images)."""
    from handgesture.data.synthetic import generate_synthetic
    from handgesture.labels import HAGRID_TARGETS, NO_GESTURE

    if workers <= 1:
        return generate_synthetic(root, per_class=per_class, users=users, frame_size=frame_size, seed=1)
    gestures = [g for g in HAGRID_TARGETS if g != NO_GESTURE]
    # Each call writes only its own gesture's JSON and image folder; a seed per gesture keeps ids apart.
    jobs = [(root, g, seed, per_class, users, tuple(frame_size)) for seed, g in enumerate(gestures, 1)]
    with ProcessPoolExecutor(min(workers, len(jobs))) as pool:
        count = sum(pool.map(_generate_one, jobs))
    return {"annotations": str(root / "annotations"), "dataset": str(root / "images"), "images": count}


def _generate_one(job) -> int:
    from handgesture.data.synthetic import generate_synthetic

    root, gesture, seed, per_class, users, frame_size = job
    info = generate_synthetic(
        root, per_class=per_class, targets=[gesture], users=users, frame_size=frame_size, seed=seed
    )
    return info["images"]


def data_overrides(dataset: dict) -> list[str]:
    return [
        f"dataset.annotations={dataset['annotations']}",
        f"dataset.dataset={dataset['dataset']}",
        "synthetic.generate_if_missing=false",
    ]


@dataclass
class Epoch:
    """Timestamps (time.perf_counter) of one pass of engine.train_one_epoch."""

    start: float
    end: float = 0.0
    steps: list[tuple[float, int]] = field(default_factory=list)  # (end of step, samples consumed so far)
    start_position: int = 0

    @property
    def images(self) -> int:
        return self.steps[-1][1] - self.start_position if self.steps else 0

    @property
    def seconds(self) -> float:
        return self.end - self.start

    def step_intervals(self) -> list[float]:
        """Seconds between consecutive step ends; the first step (loader start-up) is left out."""
        ends = [t for t, _ in self.steps]
        return [b - a for a, b in zip(ends, ends[1:], strict=False)]


class TrainingClock:
    """Timestamps from inside the training loop that the flow's train task and run_training share.

    fit() calls `handgesture.training.engine.train_one_epoch` by its module-global name, so wrapping that name
    times every epoch and every step of any run in this process (Prefect runs the task in-process), with two
    perf_counter calls per step and no change to the library. The library itself records no timings.
    """

    def __init__(self):
        self.epochs: list[Epoch] = []

    def __enter__(self) -> TrainingClock:
        from handgesture.training import engine

        self._engine, self._original = engine, engine.train_one_epoch
        engine.train_one_epoch = self._timed
        return self

    def __exit__(self, *exc) -> None:
        self._engine.train_one_epoch = self._original

    def _timed(self, trainer, batches, hooks):
        epoch = Epoch(start=time.perf_counter(), start_position=trainer.progress.position)
        inner = hooks.on_step

        def on_step(progress, values):
            if inner:
                inner(progress, values)
            epoch.steps.append((time.perf_counter(), progress.position))

        self.epochs.append(epoch)
        try:
            return self._original(trainer, batches, type(hooks)(on_step=on_step))
        finally:
            epoch.end = time.perf_counter()

    def since(self, mark: int) -> list[Epoch]:
        """Epochs recorded after `mark` (a previous len(clock.epochs)); fails if a run trained none here."""
        epochs = self.epochs[mark:]
        if not epochs or not epochs[0].steps:
            raise RuntimeError("no training step was timed: did the run train in another process?")
        return epochs


@contextlib.contextmanager
def call_times(owner, name: str) -> Iterator[list[tuple[float, float, tuple]]]:
    """Record (start, seconds, args) of each call of `owner.name` (a class or module attribute)."""
    original, calls = getattr(owner, name), []

    def timed(*args, **kwargs):
        start = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            calls.append((start, time.perf_counter() - start, args))

    setattr(owner, name, timed)
    try:
        yield calls
    finally:
        setattr(owner, name, original)


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def median(values) -> float:
    values = list(values)
    return statistics.median(values) if values else float("nan")


def table(headers: list[str], rows: list[list]) -> str:
    """A plain-text table; floats with 3 significant decimals unless already formatted."""
    cells = [[f"{v:.3f}" if isinstance(v, float) else str(v) for v in row] for row in rows]
    widths = [max(len(str(h)), *(len(r[i]) for r in cells)) for i, h in enumerate(headers)]
    line = "  ".join(f"{h:<{w}}" for h, w in zip(headers, widths, strict=True))
    out = [line, "  ".join("-" * w for w in widths)]
    out += ["  ".join(f"{c:<{w}}" for c, w in zip(r, widths, strict=True)) for r in cells]
    return "\n".join(out)


def load_note() -> str:
    load1, load5, _ = os.getloadavg()
    return f"load average {load1:.2f} (1 min), {load5:.2f} (5 min) on {os.cpu_count()} cores"
