"""The full training state <-> a checkpoint dict, both ways, in one place (Lightning's checkpoint connector).

`TrainingState.dump` writes what `TrainingState.restore` reads back: model, optimizer, scheduler, grad
scaler, progress counters and every RNG stream, plus what the checkpoint says about itself (config, model,
classes, image size, lineage). Restoring is a list of named steps, so a step cannot be forgotten on one side.
The byte format and the safe loader are `handgesture.checkpoints.format`.
"""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
import torch

from handgesture.checkpoints.format import SCHEMA_VERSION, check_compatible
from handgesture.config import Config, to_dict
from handgesture.training.engine import Progress, Trainer


@dataclass
class Lineage:
    run_name: str = ""
    run_uri: str = ""
    flow_run_id: str | None = None
    parent: str | None = None
    config_hash: str = ""


def shape_of(config: Config) -> dict[str, Any]:
    """The shape-defining fields: a checkpoint restores only into a model of the same shape."""
    return {
        "model_name": config.model.name,
        "class_names": list(config.dataset.targets),
        "image_size": list(config.dataset.image_size),
    }


class TrainingState:
    """Reads and writes `trainer`'s full training state as a checkpoint dict."""

    def __init__(self, trainer: Trainer, config: Config):
        self.trainer = trainer
        self.config = to_dict(config)  # once: every checkpoint carries the same resolved config
        self.shape = shape_of(config)
        self.lineage = Lineage()

    def dump(self, metrics: dict[str, float]) -> dict[str, Any]:
        """The checkpoint of the trainer's live state; `metrics` are the epoch's, empty mid-epoch."""
        trainer = self.trainer
        return {
            "schema_version": SCHEMA_VERSION,
            "state_dict": {k: v.detach().cpu().clone() for k, v in trainer.model.state_dict().items()},
            "optimizer_state_dict": trainer.optimizer.state_dict(),
            "scheduler_state_dict": trainer.scheduler.state_dict(),
            "scaler_state_dict": trainer.scaler.state_dict(),
            "epoch": trainer.progress.epoch,
            "progress": asdict(trainer.progress),
            "rng": capture_rng(),
            "metrics": dict(metrics),
            "config": self.config,
            **self.shape,
            "lineage": asdict(self.lineage),
            "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        }

    def restore(self, checkpoint: dict[str, Any], source: str) -> None:
        """Continue exactly where `checkpoint` stopped; a checkpoint of another shape is an error."""
        check_compatible(checkpoint, self.shape, source)
        steps = (
            self.restore_model,
            self.restore_optimizer,
            self.restore_scheduler,
            self.restore_scaler,
            self.restore_progress,
            self.restore_rng,
        )
        for step in steps:
            step(checkpoint)

    def restore_model(self, checkpoint: dict[str, Any]) -> None:
        self.trainer.model.load_state_dict(checkpoint["state_dict"])

    def restore_optimizer(self, checkpoint: dict[str, Any]) -> None:
        _load_part(self.trainer.optimizer, checkpoint, "optimizer_state_dict")

    def restore_scheduler(self, checkpoint: dict[str, Any]) -> None:
        _load_part(self.trainer.scheduler, checkpoint, "scheduler_state_dict")

    def restore_scaler(self, checkpoint: dict[str, Any]) -> None:
        _load_part(self.trainer.scaler, checkpoint, "scaler_state_dict")

    def restore_progress(self, checkpoint: dict[str, Any]) -> None:
        self.trainer.progress = progress_of(checkpoint)

    def restore_rng(self, checkpoint: dict[str, Any]) -> None:
        if "rng" in checkpoint:
            restore_rng(checkpoint["rng"])

    def restore_weights(self, checkpoint: dict[str, Any]) -> list[str]:
        """Fine-tune start: load the weights that fit, keep the rest as initialised; returns those names."""
        skipped = load_matching(self.trainer.model, checkpoint["state_dict"])
        self.trainer.finetune_skipped = skipped
        return skipped


def _load_part(part, checkpoint: dict[str, Any], key: str) -> None:
    if key in checkpoint:  # a tutorial-style file holds weights and an optimizer only
        part.load_state_dict(checkpoint[key])


def progress_of(checkpoint: dict[str, Any]) -> Progress:
    if "progress" in checkpoint:
        return Progress(**checkpoint["progress"])
    return Progress(epoch=int(checkpoint.get("epoch", 0)))  # a tutorial-style file: weights and epoch only


def load_matching(model: torch.nn.Module, state_dict: dict[str, torch.Tensor]) -> list[str]:
    """Load every tensor whose name and shape fit `model`; return the names left as initialised."""
    own = model.state_dict()
    fits = {k: v for k, v in state_dict.items() if k in own and own[k].shape == v.shape}
    model.load_state_dict(fits, strict=False)
    return sorted(set(own) - set(fits))


def capture_rng() -> dict[str, Any]:
    """Every RNG stream training touches, as tensors and plain values."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    return {
        "python": random.getstate(),
        "numpy": {
            "kind": kind,
            "keys": torch.from_numpy(keys.astype(np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "gauss": float(gauss),
        },
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }


def restore_rng(state: dict[str, Any]) -> None:
    random.setstate(_as_tuple(state["python"]))
    numpy_state = state["numpy"]
    np.random.set_state(
        (
            numpy_state["kind"],
            numpy_state["keys"].numpy().astype(np.uint32),
            numpy_state["pos"],
            numpy_state["has_gauss"],
            numpy_state["gauss"],
        )
    )
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _as_tuple(value: Any) -> Any:
    # torch.save keeps tuples, but be lenient with lists from other writers.
    return tuple(_as_tuple(v) for v in value) if isinstance(value, list | tuple) else value
