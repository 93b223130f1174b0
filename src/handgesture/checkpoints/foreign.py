"""Checkpoints in another schema than ours, read into it (or refused, saying what was expected):

- HaGRID's and the tutorial's `{state_dict, optimizer_state_dict, epoch, config}`: the architecture comes
  from the weights' keys and shapes (the tutorial's `config.model.name` can name another one), the classes
  from their config, and `epoch` is HaGRID's 0-based index of the last finished epoch. They hold no
  scheduler state and no step count: restoring fills both in (`handgesture.training.state`).
- HaGRID v2's training snapshots `{MODEL_STATE, OPTIMIZER_STATE, SCHEDULER_STATE, EPOCHS_RUN, Loss, Metric}`:
  `handgesture.checkpoints.hagrid_v2`.
- Any other schema version (our own from before HaGRID's layout, or from a newer release): refused.
"""

from __future__ import annotations

import logging
from typing import Any

from handgesture.checkpoints.format import SCHEMA_VERSION, UNKNOWN_STEP
from handgesture.checkpoints.hagrid_v2 import from_v2_snapshot, is_v2_snapshot
from handgesture.errors import CheckpointError
from handgesture.labels import HAGRID_TARGETS
from handgesture.models import ARCHITECTURES, Layout, describe_keys, detect_layout

log = logging.getLogger(__name__)
__all__ = ["UNKNOWN_STEP", "from_hagrid", "upgrade"]


def upgrade(checkpoint: dict[str, Any], source: str) -> dict[str, Any]:
    """`checkpoint` in the current schema; a HaGRID (v1 or v2) or tutorial checkpoint is read into it."""
    version = checkpoint.get("schema_version")
    if version == SCHEMA_VERSION:
        return checkpoint
    if version is not None:
        raise CheckpointError(
            f"{source} has checkpoint schema version {version}: expected version {SCHEMA_VERSION} (this "
            "pipeline's, in HaGRID's module layout) or none (HaGRID's and the tutorial's own checkpoints)"
        )
    if is_v2_snapshot(checkpoint):
        return from_v2_snapshot(checkpoint, source)
    return from_hagrid(checkpoint, source)


def from_hagrid(checkpoint: dict[str, Any], source: str) -> dict[str, Any]:
    state = {key.removeprefix("module."): value for key, value in checkpoint["state_dict"].items()}
    layout = detect_layout(state)
    if layout is None:
        raise CheckpointError(
            f"{source} holds a state_dict of {describe_keys(state)}, which is no layout we know: expected "
            f"HaGRID v1's classifier layout of one of {', '.join(ARCHITECTURES)} (ResNet18: backbone.0-7, "
            "classifier.0, leading_hand.0; MobileNetV3: backbone.0, gesture_classifier.0-3, "
            "leading_hand_classifier.0-3; Vitb32: torchvision_model, backbone.0, gesture_classifier.0, ...)"
        )
    config = checkpoint.get("config") if isinstance(checkpoint.get("config"), dict) else {}
    named = (config.get("model") or {}).get("name")
    if named and named != layout.name:  # the tutorial sets experiment_name, not model.name
        log.info("%s: its config names model %s, but its weights are a %s", source, named, layout.name)
    epoch = int(checkpoint.get("epoch", -1)) + 1
    upgraded = {
        "schema_version": SCHEMA_VERSION,
        "origin": "hagrid",
        "state_dict": state,
        "epoch": epoch,
        "progress": {"epoch": epoch, "position": 0, "global_step": UNKNOWN_STEP},
        "metrics": {},
        "config": config,
        "model_name": layout.name,
        "class_names": _class_names(config, layout, source),
        "image_size": _image_size(config, layout, source),
    }
    if "optimizer_state_dict" in checkpoint:
        upgraded["optimizer_state_dict"] = checkpoint["optimizer_state_dict"]
    return upgraded


def _class_names(config: dict[str, Any], layout: Layout, source: str) -> list[str]:
    targets = (config.get("dataset") or {}).get("targets")
    if targets is None and layout.num_classes == len(HAGRID_TARGETS):
        return list(HAGRID_TARGETS)  # HaGRID's default classes
    if not isinstance(targets, list) or len(targets) != layout.num_classes:
        raise CheckpointError(
            f"{source}: its gesture head has {layout.num_classes} classes, but its config's dataset.targets "
            f"is {targets!r}: expected a list of {layout.num_classes} class names"
        )
    return [str(t) for t in targets]


def _image_size(config: dict[str, Any], layout: Layout, source: str) -> list[int]:
    size = (config.get("dataset") or {}).get("image_size") or [layout.image_size, layout.image_size]
    size = [int(v) for v in size]
    if layout.name == "Vitb32" and size != [layout.image_size] * 2:
        raise CheckpointError(
            f"{source}: its config says image_size {size}, but its ViT position embeddings are for "
            f"{layout.image_size} px"
        )
    return size
