"""The slim weights file: a checkpoint's model and what describes it, without the training state.

`best_weights.pth` beside `best_model.pth`, and `handgesture export --format weights`. A consumer downloads
the weights alone (the full checkpoint also carries the optimizer's moments, roughly 3x the weights).
It keeps HaGRID's `state_dict` key, so HaGRID's own classes load it, and our `load_model` reads it as any
checkpoint. Resuming from it starts a fresh optimizer at its epoch. A full-frame model's file also carries
HaGRID v2's `MODEL_STATE` (the same tensors, stored once), the key v2's code loads a model from.
"""

from __future__ import annotations

from typing import Any

from handgesture.checkpoints.format import SCHEMA_VERSION, SHAPE_FIELDS
from handgesture.full_frame import v2_model_state

BEST_WEIGHTS = "best_weights.pth"
# What a slim file keeps besides the weights: enough to build the model and say where it came from.
DESCRIBING = ("epoch", "progress", "metrics", "config", "lineage", "created_at")


def slim_weights(checkpoint: dict[str, Any]) -> dict[str, Any]:
    """The weights-only file of `checkpoint` (a current-schema checkpoint dict)."""
    slim = {"schema_version": SCHEMA_VERSION, "weights_only": True, "state_dict": checkpoint["state_dict"]}
    for key in (*SHAPE_FIELDS, *DESCRIBING):
        if key in checkpoint:
            slim[key] = checkpoint[key]
    if checkpoint.get("full_frame"):
        slim["MODEL_STATE"] = v2_model_state(slim["state_dict"])
    return slim


def is_weights_only(checkpoint: dict[str, Any]) -> bool:
    return bool(checkpoint.get("weights_only"))
