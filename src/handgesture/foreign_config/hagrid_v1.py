"""HaGRID v1's classifier keys (also in v2's files): experiment_name and model.checkpoint|start_epoch
(model.full_frame is ours as it is). The table is in the package's docstring."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from handgesture.foreign_config.layer import Layer

log = logging.getLogger("handgesture.foreign_config")


def map_v1(layer: Layer) -> None:
    if "experiment_name" in layer.data:
        layer.put("storage.experiment", layer.data.pop("experiment_name"))
    model = layer.data.get("model")
    if not isinstance(model, dict):
        return
    checkpoint = _existing_checkpoint(model.pop("checkpoint", None), layer.source)
    if checkpoint:
        layer.put("checkpoint.resume", checkpoint)
    start_epoch = model.pop("start_epoch", 0)
    if start_epoch and not checkpoint:
        layer.refuse(
            f"model.start_epoch={start_epoch}",
            "no model.checkpoint that exists: a run starts where its checkpoint stopped: pass the "
            "checkpoint with --resume, drop model.start_epoch",
        )
    elif start_epoch:
        layer.note("model.start_epoch=%s is taken from the checkpoint %s instead", start_epoch, checkpoint)


def _existing_checkpoint(path: Any, source: str) -> str | None:
    if not path:
        return None
    if not Path(str(path)).expanduser().is_file():
        log.warning("%s: model.checkpoint %s does not exist; ignored, as HaGRID ignores it", source, path)
        return None
    return str(path)
