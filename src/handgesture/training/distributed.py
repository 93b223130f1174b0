"""Data-parallel training: the train step as N processes, launched with torchrun's elastic launcher.

`train_params.devices=N` (or `auto`: every visible GPU) starts N ranks on this node, `train_params.nnodes`
nodes meet at `train_params.rdzv_endpoint` (torchrun's c10d rendezvous). Each rank runs
`handgesture.training.run.run_rank`; rank 0's summary is the run's. A failed rank fails the launch, and the
error that reaches the caller is the rank's own when it is one of ours (bad input stays bad input, so the
task does not retry it; a SIGTERM stop stays `TrainingPreempted`).

Each rank writes its own error to a folder the launcher reads, because torchrun reports the first failure
*it notices*: when rank 0 stops on bad input, rank 1 fails too (its connection to rank 0 is gone), and
torchrun as often reports rank 1's lost connection as rank 0's cause. Rank 0 writes its epoch ends to the
same folder, for the caller's `on_epoch` (`handgesture.training.epoch_relay`).
"""

from __future__ import annotations

import json
import logging
import os
import socket
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
from torch.distributed.launcher.api import LaunchConfig, elastic_launch

from handgesture.config import Config
from handgesture.errors import ConfigError, InputError
from handgesture.training.epoch_relay import EpochCallback, EpochRelay
from handgesture.training.setup import pick_device

log = logging.getLogger(__name__)


def devices_per_node(config: Config) -> int:
    """How many ranks this node runs: `train_params.devices`, `auto` being every visible GPU (or 1)."""
    devices = str(config.train_params.devices)
    if devices == "auto":
        return max(1, torch.cuda.device_count())
    count, visible = int(devices), torch.cuda.device_count()
    if pick_device(config.device).type == "cuda" and count > visible:
        raise ConfigError(f"train_params.devices={count}, but only {visible} GPUs are visible")
    return count


def is_data_parallel(config: Config) -> bool:
    return devices_per_node(config) * config.train_params.nnodes > 1


def launch(
    config: Config,
    run_id: str,
    rank_main: Callable[..., Any],
    *args: Any,
    on_epoch: EpochCallback | None = None,
) -> Any:
    """Run `rank_main(*args, reports=<folder>)` on every rank; rank 0's result (None on a node without rank
    0). Epoch ends that rank 0 writes to the folder (`epoch_writer`) reach `on_epoch` in this process."""
    params = config.train_params
    if params.nnodes > 1 and not params.rdzv_endpoint:
        raise ConfigError("train_params.nnodes > 1 needs train_params.rdzv_endpoint (host:port of node 0)")
    if params.sync_bn and pick_device(config.device).type != "cuda":
        raise ConfigError("train_params.sync_bn=true needs CUDA devices: SyncBatchNorm only runs on GPUs")
    endpoint = params.rdzv_endpoint or f"127.0.0.1:{_free_port()}"
    launch_config = LaunchConfig(
        min_nodes=params.nnodes,
        max_nodes=params.nnodes,
        nproc_per_node=devices_per_node(config),
        run_id=run_id,
        rdzv_backend="c10d",
        rdzv_endpoint=endpoint,
        max_restarts=0,  # a failed rank fails the task; the task's retry resumes from the last checkpoint
        monitor_interval=0.5,
        start_method="spawn",
    )
    log.info("launching %d x %d ranks (rendezvous %s)", params.nnodes, launch_config.nproc_per_node, endpoint)
    with tempfile.TemporaryDirectory(prefix="handgesture-ranks-") as reports:
        try:
            with EpochRelay(Path(reports), on_epoch):
                results = elastic_launch(launch_config, _recording)(reports, rank_main, *args)
        except ChildFailedError as exc:
            raise rank_error(exc, Path(reports)) from None
    return results.get(0)


def _recording(reports: str, rank_main: Callable[..., Any], *args: Any) -> Any:
    """One rank: `rank_main(*args, reports=...)`, its error written to `reports/rank-<r>.json` on the way
    out."""
    try:
        return rank_main(*args, reports=Path(reports))
    except Exception as exc:
        record = {"type": type(exc).__name__, "message": str(exc)}
        (Path(reports) / f"rank-{os.environ['RANK']}.json").write_text(json.dumps(record))
        raise


def rank_error(exc: ChildFailedError, errors: Path) -> Exception:
    """The lowest rank's error of our own (an InputError, `TrainingPreempted`, ...) as its own class, else
    torchrun's first failure as a RuntimeError."""
    ours = [c for c in _subclasses(Exception) if c.__module__.startswith("handgesture")]
    known = {cls.__name__: cls for cls in ours if issubclass(cls, InputError | RuntimeError)}
    for path in sorted(errors.glob("rank-*.json"), key=lambda p: int(p.stem.split("-")[1])):
        record = json.loads(path.read_text())
        if record["type"] in known:
            try:
                return known[record["type"]](f"{path.stem.replace('-', ' ')}: {record['message']}")
            except TypeError:  # a class that takes more than a message
                continue
    rank, failure = exc.get_first_failure()
    message = failure.message if isinstance(failure.message, str) else failure.message.get("message", "")
    if not message or message.startswith("To enable traceback"):  # the rank died without a Python error
        message = f"exit code {failure.exitcode} (a negative code is the signal that killed it)"
    return RuntimeError(f"data-parallel training failed on rank {rank}: {message}")


def _subclasses(cls: type) -> list[type]:
    found = [cls]
    for sub in cls.__subclasses__():
        found += _subclasses(sub)
    return found


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
