"""The README's data-parallel commands, run as printed through the flow: 2 ranks on this machine, `auto`
(one rank on a CPU machine: the plain path), and 2 nodes, played by two processes on this machine. Only the
data is swapped for the tiny test dataset, test-only settings are appended, and node0 is 127.0.0.1."""

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests.flow.test_flow import _artifacts as artifacts_of
from tests.readme import commands
from tests.s3_fixtures import free_port
from tests.tiny import tiny_dotlist

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]


def test_the_data_parallel_commands_run_as_printed(prefect_harness, tiny_dataset, tmp_path, monkeypatch):
    from prefect.settings import PREFECT_API_URL

    from tests.commands import train

    monkeypatch.chdir(ROOT)
    test_only = [*tiny_dotlist(tiny_dataset), "train_params.epochs=1", f"storage.uri={tmp_path / 'runs'}"]
    two, auto, node = [command for command in commands("More than one GPU") if command]
    assert two[:2] == auto[:2] == node[:2] == ["python", "flows/train.py"]

    ranks = train(two[2:] + test_only)
    flow_run_id = torch.load(ranks.last_checkpoint, weights_only=True)["lineage"]["flow_run_id"]
    progress = [a for a in asyncio.run(artifacts_of(flow_run_id)) if a.type == "progress"]
    assert [a.data for a in progress] == [100.0]  # set when the ranks are done
    one = train(auto[2:] + test_only)  # `auto` on a CPU machine: one rank
    assert ranks.epochs == one.epochs == 1

    port = free_port()
    node = [arg.replace("node0:29400", f"127.0.0.1:{port}") for arg in node[2:]] + test_only
    env = {**os.environ, "PREFECT_API_URL": PREFECT_API_URL.value()}
    other = subprocess.Popen(
        [sys.executable, "flows/train.py", *node],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        here = train(node)
    finally:
        out, err = other.communicate(timeout=300)
    assert other.returncode == 0, err[-3000:]
    # Exactly one node held rank 0 (the rendezvous decides which): its flow run wrote the run.
    assert (here is None) != ("this node's ranks are done" in out + err)
    [folder] = (tmp_path / "runs").glob("*/big")
    manifest = json.loads((folder / "manifest.json").read_text())
    newest = manifest["checkpoints"][-1]
    # The same config as `auto`'s run, on 2 ranks: global batches twice as large, half the steps.
    assert (newest["epoch"], newest["global_step"]) == (1, one.global_step // 2)
