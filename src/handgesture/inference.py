"""Load a ready model from a checkpoint URI in a notebook or script: no flow, no server needed.

The counterpart of the tutorial's `_initialize_model(conf, model_name, checkpoint_path, device)`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from handgesture.checkpoints.best import POINTER
from handgesture.checkpoints.locate import Resolved, resolve_checkpoint
from handgesture.errors import CheckpointError
from handgesture.metrics import BEST_METRIC
from handgesture.models import build_model, layout_problems
from handgesture.storage import S3Settings


@dataclass
class LoadedModel:
    model: torch.nn.Module
    class_names: list[str]
    image_size: list[int]
    model_name: str
    uri: str
    epoch: int
    metrics: dict[str, float]
    sha256: str  # of the checkpoint file it came from
    full_frame: bool = False  # HaGRID v2's full-frame classifier (the whole frame in), not a hand-crop one


def load_model(uri: str, device: str | torch.device = "cpu", s3: S3Settings | None = None) -> LoadedModel:
    """The model a checkpoint (or a run folder's newest checkpoint) holds, in eval mode on `device`."""
    return model_of(resolve_checkpoint(uri, s3), device)


def model_of(resolved: Resolved, device: str | torch.device = "cpu") -> LoadedModel:
    """The model of a checkpoint already resolved (when its other contents are wanted too)."""
    checkpoint = resolved.checkpoint
    name, classes, size, full_frame = _shape(checkpoint, resolved.uri)
    model = build_model(name, len(classes), image_size=size[0], full_frame=full_frame)
    problems = layout_problems(model, checkpoint["state_dict"])
    if problems:
        raise CheckpointError(
            f"{resolved.uri} does not fit a {name} with {len(classes)} classes: {'; '.join(problems)}"
        )
    model.load_state_dict(checkpoint["state_dict"])
    model.to(device).eval()
    return LoadedModel(
        model=model,
        class_names=classes,
        image_size=size,
        model_name=name,
        full_frame=full_frame,
        uri=resolved.uri,
        epoch=int(checkpoint.get("epoch", 0)),
        metrics=dict(checkpoint.get("metrics", {})),
        sha256=resolved.sha256,
    )


def _shape(checkpoint: dict[str, Any], uri: str) -> tuple[str, list[str], list[int], bool]:
    config = checkpoint.get("config") or {}
    name = checkpoint.get("model_name") or config.get("model", {}).get("name")
    full_frame = checkpoint.get("full_frame", config.get("model", {}).get("full_frame", False))
    classes = checkpoint.get("class_names") or config.get("dataset", {}).get("targets")
    size = checkpoint.get("image_size") or config.get("dataset", {}).get("image_size") or [224, 224]
    if not name or not classes:
        raise CheckpointError(f"{uri} does not say which model or classes it holds (model_name, class_names)")
    return name, list(classes), list(size), bool(full_frame)


def experiment_best(experiment: str | Path) -> str:
    """What to load from a local experiment folder when no model is named: its promoted best
    (`<experiment>/best`), else the `best_model.pth` of the run that scored highest on validation. Never
    merely the newest run: after a short retrain that is the weakest model there."""
    folder = Path(experiment)
    if (folder / POINTER).is_file():
        return str(folder / "best")
    candidates = sorted(folder.glob("*/best_model.pth"))
    if not candidates:
        raise CheckpointError(f"{folder} holds no run with a best_model.pth: train one first (make demo)")
    return str(max(candidates, key=_validation_score))


def _validation_score(path: Path) -> float:
    metrics = resolve_checkpoint(str(path)).checkpoint.get("metrics") or {}
    return float(metrics.get(BEST_METRIC, float("-inf")))
