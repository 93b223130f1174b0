"""Prepare on a real Dask cluster (`prepare.dask`): shards run on the workers through prefect-dask, the parts
read as one cache, and a worker killed mid-shard costs that shard only; a scheduler is used only when this
machine lists it (HANDGESTURE_DASK_SCHEDULERS), and its shards are planned for its workers."""

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from handgesture.config import load_config
from handgesture.config_checks import DASK_SCHEDULERS_ENV
from handgesture.data.cache_layout import PARTS
from handgesture.data.prepare import open_split, prepare_data
from tests.tiny import tiny_dotlist

pytestmark = pytest.mark.usefixtures("prefect_harness")
DEADLINE_S = 120
GATE_MODULE = Path(__file__).resolve().parents[1] / "dask_gate.py"


def _config(tiny_dataset, cache_dir, dask):
    dotlist = [o for o in tiny_dotlist(tiny_dataset) if not o.startswith("dataset.cache_dir")]
    return load_config(None, [*dotlist, f"dataset.cache_dir={cache_dir}", f"prepare.dask={dask}"])


def _wait_for(condition, what):
    deadline = time.monotonic() + DEADLINE_S
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def test_local_cluster_prepares_the_same_cache_in_parts(tiny_dataset, tmp_path):
    from flows.prepare import prepare_step

    config = _config(tiny_dataset, tmp_path / "cache", "local:2")
    split = prepare_step(config).splits["train"]
    parts = sorted(p.name for p in (Path(split.cache) / PARTS).iterdir())
    assert split.origin == "prepared" and len(parts) == 2
    one = prepare_data(_config(tiny_dataset, tmp_path / "one", "null")).splits["train"]
    assert (split.key, split.samples, split.unreadable) == (one.key, one.samples, one.unreadable)
    data = open_split(config, split)
    assert data.dataset(data.samples, False, [32, 32])[0]["image"].shape == (3, 32, 32)


def test_the_prepare_command_with_local_workers_prepares_in_shards(tiny_dataset, tmp_path, capsys):
    from handgesture_cli.main import main

    dotlist = [o for o in tiny_dotlist(tiny_dataset) if not o.startswith("dataset.cache_dir")]
    argv = [*dotlist, f"dataset.cache_dir={tmp_path / 'cache'}", "prepare.dask=local:2"]
    assert main(["prepare", *argv]) == 0
    split = json.loads(capsys.readouterr().out)["splits"]["train"]
    assert split["origin"] == "prepared" and len(list((Path(split["cache"]) / PARTS).iterdir())) == 2
    one = prepare_data(_config(tiny_dataset, tmp_path / "one", "null")).splits["train"]
    assert (split["key"], split["samples"], split["unreadable"]) == (one.key, one.samples, one.unreadable)
    config = load_config(None, argv)
    data = open_split(config, prepare_data(config).splits["train"])  # the command's cache, reused as it is
    assert data.dataset(data.samples, False, [32, 32])[0]["image"].shape == (3, 32, 32)


def test_a_flow_parameter_naming_an_unlisted_scheduler_fails_before_connecting_or_writing(
    tiny_dataset, tmp_path, monkeypatch
):
    import socket

    from flows.train import train_hand_gesture_classifier

    from handgesture.errors import ConfigError

    monkeypatch.delenv(DASK_SCHEDULERS_ENV, raising=False)
    dotlist = [o for o in tiny_dotlist(tiny_dataset) if not o.startswith("dataset.cache_dir")]
    with socket.socket() as listener:  # where the parameter points: a connection would wait in its backlog
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        listener.setblocking(False)
        address = f"tcp://127.0.0.1:{listener.getsockname()[1]}"
        overrides = [*dotlist, f"dataset.cache_dir={tmp_path / 'cache'}", f"prepare.dask={address}"]
        with pytest.raises(ConfigError, match=f"^prepare.dask='{address}' is not in {DASK_SCHEDULERS_ENV}"):
            train_hand_gesture_classifier(overrides=overrides, storage=str(tmp_path / "runs"))
        with pytest.raises(BlockingIOError):
            listener.accept()
    assert not (tmp_path / "runs").exists() and not (tmp_path / "cache").exists()


@pytest.fixture
def dask_cluster(tmp_path, monkeypatch):
    """`dask scheduler` and `dask worker` processes on 127.0.0.1 (two one-thread workers, nanny-restarted),
    reporting to the test's Prefect API, with the shard gate preloaded; this machine lists the scheduler."""
    from prefect.settings import get_current_settings

    port = _free_port()
    env = {**os.environ, "HANDGESTURE_TEST_GATE": str(tmp_path / "gate")}
    env["PREFECT_API_URL"] = str(get_current_settings().api.url)
    (tmp_path / "gate").mkdir()
    bin_dir = Path(sys.executable).parent
    scheduler = subprocess.Popen(
        [bin_dir / "dask", "scheduler", "--host", "127.0.0.1", "--port", str(port), "--no-dashboard"],
        env=env,
        start_new_session=True,
    )
    worker = subprocess.Popen(
        [bin_dir / "dask", "worker", f"tcp://127.0.0.1:{port}", "--nworkers", "2", "--nthreads", "1"]
        + ["--no-dashboard", "--preload", str(GATE_MODULE)],
        env=env,
        start_new_session=True,
    )
    try:
        _wait_for_workers(f"tcp://127.0.0.1:{port}", 2)
        monkeypatch.setenv(DASK_SCHEDULERS_ENV, f"tcp://127.0.0.1:{port}")
        yield f"tcp://127.0.0.1:{port}", tmp_path / "gate"
    finally:
        for process in (worker, scheduler):  # each in a session of its own: its worker processes too
            _signal_group(process, signal.SIGTERM)
        for process in (worker, scheduler):
            with contextlib.suppress(subprocess.TimeoutExpired):  # a nanny still closing its worker
                process.wait(timeout=30)
            _signal_group(process, signal.SIGKILL)  # whatever of the group is left
            process.wait(timeout=30)


def _wait_for_workers(address: str, count: int) -> None:
    from distributed import Client

    with Client(address, timeout=DEADLINE_S, set_as_default=False) as client:
        client.wait_for_workers(count, timeout=DEADLINE_S)


def _signal_group(process, sig) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, sig)


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_worker_killed_mid_shard_costs_that_shard_only(tiny_dataset, tmp_path, dask_cluster):
    from flows.prepare import prepare_step

    address, gate = dask_cluster
    config = _config(tiny_dataset, tmp_path / "cache", address)
    config.prepare.shard_size = 40
    kept: dict[Path, int] = {}

    def kill_the_blocked_worker():
        _wait_for(lambda: any(gate.glob("blocked-*")), "the first shard to start")
        parts = next((tmp_path / "cache").iterdir()) / PARTS
        _wait_for(lambda: len(list(parts.glob("*/part.json"))) >= 2, "the other shards to finish")
        kept.update({p: p.stat().st_ino for p in parts.glob("*/crops.bin")})
        (gate / "open").write_text("")  # the shard's next try passes
        os.kill(int(next(gate.glob("blocked-*")).name.split("-")[1]), signal.SIGKILL)

    killer = threading.Thread(target=kill_the_blocked_worker, daemon=True)
    killer.start()
    split = prepare_step(config).splits["train"]
    killer.join(timeout=DEADLINE_S)
    assert split.origin == "prepared" and len(kept) >= 2
    assert {p: p.stat().st_ino for p in kept} == kept  # finished parts kept, not redone
    assert (Path(split.cache) / PARTS / f"00000000-{40:08d}" / "part.json").is_file()
    assert open_split(config, split).samples == open_split(config, split).samples


def test_a_listed_scheduler_gets_a_shard_for_each_of_its_workers(tiny_dataset, tmp_path, dask_cluster):
    from flows.prepare import prepare_step

    address, gate = dask_cluster
    (gate / "open").write_text("")  # no shard is held back here
    config = _config(tiny_dataset, tmp_path / "cache", address)
    split = prepare_step(config).splits["train"]
    parts = sorted(p.name for p in (Path(split.cache) / PARTS).iterdir())
    assert split.samples <= config.prepare.shard_size  # one shard could hold them all; 2 workers
    assert split.origin == "prepared" and len(parts) == 2
    assert len(open_split(config, split).samples) == split.samples
