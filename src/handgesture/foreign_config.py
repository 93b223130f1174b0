"""HaGRID's and the tutorial's config files, read as ours: their extra keys mapped to ours or refused with a
reason, so `hagrid/classifier/config/default.yaml` runs as given with `--config`.

    experiment_name     -> storage.experiment (unless the file sets that too)
    model.checkpoint    -> checkpoint.resume when the file exists (HaGRID loads it only then; its default
                           "/path/to/chackpoint" and the tutorial's "best_model.pth" usually do not)
    model.start_epoch   0 is the default; another value needs the checkpoint above, whose own epoch wins
    model.full_frame    false is what this pipeline does (hand crops); true is refused
"""

from __future__ import annotations

import copy
import logging
from pathlib import Path
from typing import Any

from handgesture.errors import ConfigError

log = logging.getLogger(__name__)
FOREIGN_KEYS = ("experiment_name", "model.checkpoint", "model.start_epoch", "model.full_frame")


def translate(data: dict[str, Any], source: str) -> dict[str, Any]:
    """`data` (one config layer as plain containers) with HaGRID's keys replaced by ours."""
    if "experiment_name" not in data and not _foreign_model_keys(data):
        return data
    data = copy.deepcopy(data)
    if "experiment_name" in data:
        experiment = data.pop("experiment_name")
        data.setdefault("storage", {}).setdefault("experiment", experiment)
    model = data.get("model") or {}
    if model.pop("full_frame", False):
        raise ConfigError(
            f"model.full_frame=true in {source}: this pipeline trains on hand crops only; set it to false"
        )
    checkpoint = _existing_checkpoint(model.pop("checkpoint", None), source)
    if checkpoint:
        data.setdefault("checkpoint", {}).setdefault("resume", checkpoint)
    start_epoch = model.pop("start_epoch", 0)
    if start_epoch and not checkpoint:
        raise ConfigError(
            f"model.start_epoch={start_epoch} in {source} without a model.checkpoint that exists: a run "
            "starts where its checkpoint stopped: pass the checkpoint with --resume, drop model.start_epoch"
        )
    if start_epoch:
        log.info(
            "%s: model.start_epoch=%s is taken from the checkpoint %s instead",
            source,
            start_epoch,
            checkpoint,
        )
    return data


def _foreign_model_keys(data: dict[str, Any]) -> bool:
    model = data.get("model")
    return isinstance(model, dict) and any(
        key in model for key in ("checkpoint", "start_epoch", "full_frame")
    )


def _existing_checkpoint(path: Any, source: str) -> str | None:
    if not path:
        return None
    if not Path(str(path)).expanduser().is_file():
        log.warning("%s: model.checkpoint %s does not exist; ignored, as HaGRID ignores it", source, path)
        return None
    return str(path)


def unknown_keys(data: dict[str, Any], schema: dict[str, Any], prefix: str = "") -> list[str]:
    """Every dotted key of `data` that `schema` (the defaults, as plain containers) does not have."""
    unknown = []
    for key, value in data.items():
        dotted = f"{prefix}{key}"
        if key not in schema:
            unknown.append(dotted)
        elif isinstance(value, dict) and isinstance(schema[key], dict):
            unknown += unknown_keys(value, schema[key], f"{dotted}.")
    return unknown


def known_part(data: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    """`data` without the keys `schema` lacks (HaGRID's configs carry some of their own, like num_classes)."""
    known = {}
    for key, value in data.items():
        if key in schema:
            nested = isinstance(value, dict) and isinstance(schema[key], dict)
            known[key] = known_part(value, schema[key]) if nested else value
    return known
