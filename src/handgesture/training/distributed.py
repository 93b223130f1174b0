"""Data-parallel training: the train step as N processes, launched with torchrun's elastic launcher.

`train_params.devices=N` (or `auto`: every visible GPU) starts N ranks on this node, `train_params.nnodes`
nodes meet at `train_params.rdzv_endpoint` (torchrun's c10d rendezvous). Each rank runs
`handgesture.training.run.run_rank`; rank 0's summary is the run's. A failed rank fails the launch, and the
error that reaches the caller carries the rank's own message when the library raised it: a `RankInputError`
when it was bad input (so the task does not retry it), else a `RankFailedError` (a SIGTERM stop, a crash).

Each rank writes its own error to a folder the launcher reads, because torchrun reports the first failure
*it notices*: when rank 0 stops on bad input, rank 1 fails too (its connection to rank 0 is gone), and
torchrun as often reports rank 1's lost connection as rank 0's cause.

Two guards run before anything is launched. On CPU a node runs at most one rank per usable core: each rank is
a process with its own model, optimizer and loaders, so more ranks than cores only add memory. A given
rendezvous endpoint that accepts connections must answer as a c10d store within seconds: torch's store
client waits forever, in C++ (deaf to SIGTERM), on a port that another service holds.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
from torch.distributed.elastic.rendezvous.utils import parse_rendezvous_endpoint
from torch.distributed.launcher.api import LaunchConfig, elastic_launch

from handgesture.config import Config
from handgesture.errors import ConfigError, InputError
from handgesture.training.setup import pick_device

log = logging.getLogger(__name__)

HANDSHAKE_TIMEOUT_S = 5.0  # a c10d store answers in milliseconds, even across a data centre
PROBE_PROCESS_TIMEOUT_S = 120.0  # the probe's own deadline, plus importing torch on a loaded machine
PROBE = Path(__file__).with_name("launch_probe.py")
DEFAULT_RDZV_PORT = 29400  # torchrun's, for an endpoint given without a port


class RankInputError(InputError):
    """A rank of a data-parallel run stopped on bad input; the message is the rank's own. Never retried."""


class RankFailedError(RuntimeError):
    """A rank of a data-parallel run failed (stopped on SIGTERM, crashed); a retry continues the run."""


def devices_per_node(config: Config) -> int:
    """How many ranks this node runs: `train_params.devices`, `auto` being every visible GPU (or 1); at most
    the visible GPUs on CUDA, the usable cores on CPU."""
    devices = str(config.train_params.devices)
    if devices == "auto":
        return max(1, torch.cuda.device_count())
    count = int(devices)
    if pick_device(config.device).type == "cuda":
        visible = torch.cuda.device_count()
        if count > visible:
            raise ConfigError(f"train_params.devices={count}, but only {visible} GPUs are visible")
    elif count > (cores := usable_cores()):
        raise ConfigError(
            f"train_params.devices={count} on CPU, but this machine gives this process {cores} cores: each "
            f"rank is a process with its own model, optimizer and loaders; expected at most {cores}"
        )
    return count


def usable_cores() -> int:
    """The cores this process may run on (a container's or taskset's share, not the machine's count)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def is_data_parallel(config: Config) -> bool:
    return devices_per_node(config) * config.train_params.nnodes > 1


def launch(config: Config, run_id: str, rank_main: Callable[..., Any], *args: Any) -> Any:
    """Run `rank_main(*args)` on every rank; rank 0's result (None on a node without rank 0)."""
    params = config.train_params
    if params.nnodes > 1 and not params.rdzv_endpoint:
        raise ConfigError("train_params.nnodes > 1 needs train_params.rdzv_endpoint (host:port of node 0)")
    if params.sync_bn and pick_device(config.device).type != "cuda":
        raise ConfigError("train_params.sync_bn=true needs CUDA devices: SyncBatchNorm only runs on GPUs")
    if params.rdzv_endpoint:
        check_rendezvous(params.rdzv_endpoint)
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
            results = elastic_launch(launch_config, _recording)(reports, rank_main, *args)
        except ChildFailedError as exc:
            raise rank_error(exc, Path(reports)) from None
    return results.get(0)


def check_rendezvous(endpoint: str) -> None:
    """Fail in seconds, naming `endpoint`, when a service there accepts connections but is no c10d store.

    Nothing listening is fine: node 0 hosts the store there, or will (the other nodes wait for it)."""
    try:
        host, port = parse_rendezvous_endpoint(endpoint, default_port=DEFAULT_RDZV_PORT)
    except ValueError as exc:
        raise ConfigError(f"train_params.rdzv_endpoint={endpoint!r}: expected host:port ({exc})") from None
    try:
        socket.create_connection((host, port), timeout=HANDSHAKE_TIMEOUT_S).close()
    except OSError:
        return  # refused, unreachable or unresolved: torch's rendezvous reports or waits as it always has
    problem = _store_handshake(host, port)
    if problem:
        raise ConfigError(
            f"train_params.rdzv_endpoint={endpoint}: a service there accepted the connection but {problem}; "
            "expected the host:port of node 0's rendezvous, on a port no other service holds"
        )


def _store_handshake(host: str, port: int) -> str | None:
    """Why the service at host:port is not a c10d store (None when it is one, or when no probe could run).

    torch's own client, in a process of its own (`launch_probe`): in this one, a client left waiting on a
    silent service would abort the process when it exits."""
    command = [sys.executable, "-I", str(PROBE), host, str(port), f"{HANDSHAKE_TIMEOUT_S:g}"]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=PROBE_PROCESS_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        log.warning(
            "the rendezvous check of %s:%s did not finish in %s s", host, port, PROBE_PROCESS_TIMEOUT_S
        )
        return None
    answer = (done.stdout.strip().splitlines() or [""])[-1]
    if answer == "ok":
        return None
    if answer == "silent":
        return f"did not answer as torch's c10d rendezvous store within {HANDSHAKE_TIMEOUT_S:g} s"
    if answer.startswith("error: "):
        return f"answered, but not as torch's c10d rendezvous store ({answer.removeprefix('error: ')})"
    log.warning("the rendezvous check of %s:%s failed: %s", host, port, done.stderr.strip()[-2000:])
    return None  # the check itself broke: torch's launcher tries the endpoint as it always has


def _recording(reports: str, rank_main: Callable[..., Any], *args: Any) -> Any:
    """One rank: `rank_main(*args)`. An error the library raised (bad input, a SIGTERM stop) is written to
    `reports/rank-<r>.json` on the way out, as data: whether it is bad input, and its message. Others (a
    rank's lost connection to a rank that stopped) are left to torchrun's report."""
    try:
        return rank_main(*args)
    except Exception as exc:
        if type(exc).__module__.startswith("handgesture."):
            record = {"input_error": isinstance(exc, InputError), "message": str(exc)}
            (Path(reports) / f"rank-{os.environ['RANK']}.json").write_text(json.dumps(record))
        raise


def rank_error(exc: ChildFailedError, errors: Path) -> Exception:
    """The lowest rank's recorded error (`RankInputError` for bad input, else `RankFailedError`), else
    torchrun's first failure as a `RankFailedError`."""
    recorded = sorted(errors.glob("rank-*.json"), key=lambda p: int(p.stem.split("-")[1]))
    if recorded:
        record = json.loads(recorded[0].read_text())
        error = RankInputError if record["input_error"] else RankFailedError
        return error(f"{recorded[0].stem.replace('-', ' ')}: {record['message']}")
    rank, failure = exc.get_first_failure()
    message = failure.message if isinstance(failure.message, str) else failure.message.get("message", "")
    if not message or message.startswith("To enable traceback"):  # the rank died without a Python error
        message = f"exit code {failure.exitcode} (a negative code is the signal that killed it)"
    return RankFailedError(f"data-parallel training failed on rank {rank}: {message}")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
