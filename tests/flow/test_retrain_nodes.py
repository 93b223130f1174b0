"""A scheduled retrain across 2 nodes (two processes on this machine): the node holding rank 0 persists and
promotes; the other's flow run ends with None when its ranks are done, and promotes nothing."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.s3_fixtures import free_port
from tests.tiny import tiny_dotlist

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]


def test_a_two_node_retrain_is_persisted_and_promoted_once(prefect_harness, tiny_dataset, tmp_path):
    from flows.retrain import retrain_hand_gesture_classifier
    from prefect.settings import PREFECT_API_URL

    nodes = [f"train_params.rdzv_endpoint=127.0.0.1:{free_port()}", "train_params.nnodes=2"]
    overrides = [*tiny_dotlist(tiny_dataset), "train_params.epochs=1", "storage.run_name=nightly", *nodes]
    params = {"config": "configs/demo.yaml", "overrides": overrides, "storage": str(tmp_path / "runs")}
    other = subprocess.Popen(
        [sys.executable, "-c", f"from flows.retrain import *; print('node result:', {_call(params)})"],
        cwd=ROOT,
        env={**os.environ, "PREFECT_API_URL": PREFECT_API_URL.value()},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        here = retrain_hand_gesture_classifier(**params)
    finally:
        out, err = other.communicate(timeout=300)
    assert other.returncode == 0, err[-3000:]
    # Exactly one node held rank 0 (the rendezvous decides which): its flow run persisted and promoted.
    assert (here is None) != ("node result: None" in out), (here, out[-3000:])
    assert here is None or (here.promotion.promoted and here.run.run_uri.endswith("/nightly"))
    [pointer] = (tmp_path / "runs").glob("*/best.json")
    assert "/nightly/" in json.loads(pointer.read_text())["checkpoint"]


def _call(params: dict) -> str:
    return f"retrain_hand_gesture_classifier(**{params!r})"
