"""The CUDA path, on a CUDA device only (the GPU check, scripts/gpu_check.sh, runs these): bf16 autocast,
channels_last, pinned host memory and asynchronous copies, no per-step device sync, and exact resume with
deterministic settings."""

import os
import warnings

import pytest
import torch

from handgesture.data.loaders import build_data
from handgesture.data.prepare import prepare_data
from handgesture.training import run_training
from handgesture.training.engine import Hooks, autocast_dtype, train_one_epoch
from handgesture.training.setup import build_trainer
from tests.unit.training.test_engine import batches
from tests.unit.training.test_resume import assert_identical, final_state

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device (the GPU check runs it)"),
]
CUDA = torch.device("cuda")


def test_the_trainer_uses_bf16_autocast_and_channels_last(tiny_config):
    trainer = build_trainer(tiny_config("device=cuda"), CUDA, steps_per_epoch=10)
    assert trainer.amp and autocast_dtype(CUDA) == torch.bfloat16  # Ampere and later: no GradScaler needed
    assert not trainer.scaler.is_enabled()
    convolution = next(p for p in trainer.model.parameters() if p.dim() == 4)
    assert convolution.is_cuda and convolution.is_contiguous(memory_format=torch.channels_last)
    with torch.autocast("cuda", dtype=torch.bfloat16):
        outputs = trainer.model(
            torch.rand(2, 3, 32, 32, device=CUDA).contiguous(memory_format=torch.channels_last)
        )
    assert outputs["gesture"].dtype == torch.bfloat16


def test_loader_batches_arrive_in_pinned_memory(tiny_config):
    config = tiny_config("device=cuda", "train_params.num_workers=2")
    data = build_data(config, CUDA, prepare_data(config))
    batch = next(iter(data.train_batches(0, 0)))
    assert batch["image"].is_pinned() and batch["gesture"].is_pinned()


def test_a_step_never_waits_for_the_device_between_loss_reads(tiny_config):
    trainer = build_trainer(tiny_config("device=cuda", "train_params.log_every_n_steps=10"), CUDA, 25)
    pinned = [{k: v.pin_memory() if torch.is_tensor(v) else v for k, v in b.items()} for b in batches(25)]
    train_one_epoch(trainer, pinned[:2], Hooks())  # warm-up: cuDNN and the allocator settle first
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("warn")
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            train_one_epoch(trainer, pinned[2:], Hooks())
    finally:
        torch.cuda.set_sync_debug_mode("default")
    syncs = [w for w in caught if "synchronizing" in str(w.message)]
    assert len(syncs) == 3, [
        str(w.message) for w in syncs
    ]  # the loss read at steps 10 and 20, and at the end


def test_two_epochs_equal_one_plus_resumed_one_on_cuda(tiny_config, monkeypatch):
    # cuBLAS picks non-deterministic kernels unless its workspace is fixed (scripts/gpu_check.sh sets this
    # before the process starts; set here too for a direct pytest run).
    monkeypatch.setenv("CUBLAS_WORKSPACE_CONFIG", os.environ.get("CUBLAS_WORKSPACE_CONFIG", ":4096:8"))
    settings = ("device=cuda", "deterministic=true", "train_params.num_workers=2")
    straight = run_training(tiny_config(*settings), run_name="straight")
    first = run_training(tiny_config(*settings, "train_params.epochs=1"), run_name="first")
    resumed = run_training(tiny_config(*settings), run_name="resumed", resume=first.last_checkpoint)
    assert_identical(final_state(straight.last_checkpoint), final_state(resumed.last_checkpoint))
    assert resumed.history == straight.history
