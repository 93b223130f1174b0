"""Checkpoints: the full training state as a self-describing dict of tensors and plain containers.

Files load with `torch.load(weights_only=True)`, so loading never runs pickled code. The tutorial's keys
(`state_dict`, `optimizer_state_dict`, `epoch`, `config`) are kept so its own snippet works on our files.
"""

from __future__ import annotations

import io
import pickle
import random
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
import torch

SCHEMA_VERSION = 1
SHAPE_FIELDS = ("model_name", "class_names", "image_size")


class CheckpointError(ValueError):
    """A checkpoint is missing, unreadable, not ours, or does not fit the config."""


@dataclass
class Progress:
    """Counters that say where training stands; `epoch` counts completed epochs."""

    epoch: int = 0
    position: int = 0  # samples already consumed in the current (incomplete) epoch
    global_step: int = 0
    best_metric: float = -1.0
    best_epoch: int = -1
    # The current epoch's running loss, so a mid-epoch resume reports the same epoch mean.
    epoch_loss_sum: float = 0.0
    epoch_batches: int = 0
    history: list[dict[str, float]] = field(default_factory=list)


@dataclass
class Lineage:
    run_name: str = ""
    run_uri: str = ""
    flow_run_id: str | None = None
    parent: str | None = None
    config_hash: str = ""


def capture_rng() -> dict[str, Any]:
    """Every RNG stream training touches, as tensors and plain values."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    state = {
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
    return state


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


def build_checkpoint(
    *,
    model: torch.nn.Module,
    optimizer,
    scheduler,
    scaler,
    progress: Progress,
    lineage: Lineage,
    config: dict[str, Any],
    model_name: str,
    class_names: list[str],
    image_size: list[int],
    metrics: dict[str, float] | None = None,
) -> dict[str, Any]:
    return {
        "schema_version": SCHEMA_VERSION,
        "state_dict": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
        "optimizer_state_dict": optimizer.state_dict(),
        "scheduler_state_dict": scheduler.state_dict(),
        "scaler_state_dict": scaler.state_dict(),
        "epoch": progress.epoch,
        "progress": asdict(progress),
        "rng": capture_rng(),
        "metrics": dict(metrics or {}),
        "config": config,
        "model_name": model_name,
        "class_names": list(class_names),
        "image_size": list(image_size),
        "lineage": asdict(lineage),
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def to_bytes(checkpoint: dict[str, Any]) -> bytes:
    buffer = io.BytesIO()
    torch.save(checkpoint, buffer)
    return buffer.getvalue()


def from_bytes(data: bytes, source: str) -> dict[str, Any]:
    """Decode with weights_only=True; anything that is not one of our checkpoints is a clear error."""
    try:
        checkpoint = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        if "Weights only load failed" not in str(exc):
            raise CheckpointError(f"{source} is not a readable checkpoint: {exc}") from None
        # The safe unpickler met a global it does not allow: code that a plain torch.load would have run.
        reason = str(exc).strip().splitlines()[-1][:300]
        raise CheckpointError(
            f"{source} was refused by the safe loader (weights_only=True): it holds objects other than "
            f"tensors and plain containers ({reason})"
        ) from None
    except Exception as exc:  # truncated zip, bad magic number, garbage bytes: torch raises many kinds
        raise CheckpointError(f"{source} is not a readable checkpoint (torn or corrupt?): {exc!r}") from None
    if not isinstance(checkpoint, dict) or "state_dict" not in checkpoint:
        raise CheckpointError(f"{source} is not a training checkpoint (expected a dict with 'state_dict')")
    return checkpoint


def progress_of(checkpoint: dict[str, Any]) -> Progress:
    if "progress" in checkpoint:
        return Progress(**checkpoint["progress"])
    return Progress(epoch=int(checkpoint.get("epoch", 0)))  # a tutorial-style file: weights and epoch only


def check_compatible(checkpoint: dict[str, Any], expected: dict[str, Any], source: str) -> None:
    """Shape-defining fields come from the checkpoint; a conflict with the config names both values."""
    if checkpoint.get("schema_version", SCHEMA_VERSION) > SCHEMA_VERSION:
        version = checkpoint["schema_version"]
        raise CheckpointError(f"{source} has schema version {version}, newer than ours ({SCHEMA_VERSION})")
    for key in SHAPE_FIELDS:
        found = checkpoint.get(key)
        if found is not None and found != expected[key]:
            raise CheckpointError(
                f"{source} was trained with {key}={found!r} but the config asks for {key}={expected[key]!r}; "
                f"set the config to match the checkpoint or start a new run"
            )


def load_matching(model: torch.nn.Module, state_dict: dict[str, torch.Tensor]) -> list[str]:
    """Load every tensor whose name and shape fit `model`; return the names left as initialised."""
    own = model.state_dict()
    fits = {k: v for k, v in state_dict.items() if k in own and own[k].shape == v.shape}
    model.load_state_dict(fits, strict=False)
    return sorted(set(own) - set(fits))
