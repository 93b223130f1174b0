"""A resume whose learning-rate schedule changes form continues this run's schedule from the checkpoint's
step, mid-epoch included: the steps already taken in the checkpoint's epoch count, not only whole epochs."""

import json
from pathlib import Path

import pytest
import torch

from handgesture.training import run_training

CHECKPOINTS = ("checkpoint.every_n_steps=1", "checkpoint.keep_last=1000", "scheduler.cosine=true")


def committed(result) -> dict[int, dict]:
    """The run's checkpoints by global step."""
    manifest = json.loads((Path(result.run_uri) / "manifest.json").read_text())
    return {entry["global_step"]: entry for entry in manifest["checkpoints"]}


def schedule(uri: str) -> tuple[dict, list[float]]:
    """The scheduler's state and the optimizer's learning rates in the checkpoint at `uri`."""
    checkpoint = torch.load(uri, weights_only=True)
    return checkpoint["scheduler_state_dict"], [
        g["lr"] for g in checkpoint["optimizer_state_dict"]["param_groups"]
    ]


@pytest.mark.slow
def test_a_mid_epoch_resume_with_more_epochs_continues_the_cosine_from_its_step(tiny_config):
    straight = run_training(tiny_config(*CHECKPOINTS, "train_params.epochs=2"), run_name="straight")
    # One epoch's cosine ends at that epoch's last step: another form than two epochs' cosine.
    first = run_training(tiny_config(*CHECKPOINTS, "train_params.epochs=1"), run_name="first")
    mid = max(
        (e for e in committed(first).values() if e["epoch"] == 0 and e["position"] > 0),
        key=lambda e: e["global_step"],
    )
    assert 0 < mid["global_step"] < first.global_step  # inside the epoch, past its first step

    resumed = run_training(
        tiny_config(*CHECKPOINTS, "train_params.epochs=2"), run_name="resumed", resume=mid["uri"]
    )

    assert resumed.global_step == straight.global_step
    ahead = committed(straight)
    for step, entry in sorted(committed(resumed).items()):
        assert schedule(entry["uri"]) == schedule(ahead[step]["uri"]), f"the schedule at step {step}"
