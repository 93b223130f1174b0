"""Where a run starts: its own newest checkpoint, a `resume` URI (full state or fine-tune), or scratch."""

from __future__ import annotations

import logging
from typing import Any

from handgesture import checkpoint as ckpt
from handgesture.config import Config
from handgesture.engine import Trainer
from handgesture.resolve import resolve_checkpoint
from handgesture.runs import RunFolder
from handgesture.storage import S3Settings

log = logging.getLogger(__name__)


def s3_settings(config: Config) -> S3Settings:
    return S3Settings(
        block=config.storage.block,
        endpoint_url=config.storage.endpoint_url,
        max_retries=config.storage.max_retries,
    )


def start_point(trainer: Trainer, config: Config, run: RunFolder, resume: str | None) -> str | None:
    """Restore from the run's own newest checkpoint, else from `resume`; returns the lineage parent."""
    if run.manifest["checkpoints"]:
        own = restore(trainer, config, run.uri)
        run.retention.protected.add(own.removeprefix(run.uri).lstrip("/"))
        log.info("continuing run %s from its own checkpoint %s", run.uri, own)
        return run.manifest.get("parent")
    if not resume:
        return None
    if config.checkpoint.resume_mode == "finetune":
        return finetune_from(trainer, config, resume)
    parent = restore(trainer, config, resume)
    if parent.startswith(run.uri.rstrip("/") + "/"):
        run.retention.protected.add(parent.removeprefix(run.uri).lstrip("/"))
    return parent


def restore(trainer: Trainer, config: Config, resume: str) -> str:
    resolved = resolve_checkpoint(resume, s3_settings(config))
    checkpoint = resolved.checkpoint
    ckpt.check_compatible(checkpoint, shape_of(config), resolved.uri)
    trainer.model.load_state_dict(checkpoint["state_dict"])
    for name, part in (
        ("optimizer", trainer.optimizer),
        ("scheduler", trainer.scheduler),
        ("scaler", trainer.scaler),
    ):
        if f"{name}_state_dict" in checkpoint:
            part.load_state_dict(checkpoint[f"{name}_state_dict"])
    trainer.progress = ckpt.progress_of(checkpoint)
    if "rng" in checkpoint:
        ckpt.restore_rng(checkpoint["rng"])
    log.info(
        "resumed from %s at epoch %d, step %d",
        resolved.uri,
        trainer.progress.epoch,
        trainer.progress.global_step,
    )
    return resolved.uri


def finetune_from(trainer: Trainer, config: Config, source: str) -> str:
    """Start fresh (optimizer, schedule, counters) from the weights that fit; other heads stay initialised."""
    resolved = resolve_checkpoint(source, s3_settings(config))
    skipped = ckpt.load_matching(trainer.model, resolved.checkpoint["state_dict"])
    trainer.finetune_skipped = skipped
    log.info(
        "fine-tuning from %s; re-initialised %d tensors that do not fit: %s",
        resolved.uri,
        len(skipped),
        ", ".join(skipped) or "none",
    )
    return resolved.uri


def shape_of(config: Config) -> dict[str, Any]:
    return {
        "model_name": config.model.name,
        "class_names": list(config.dataset.targets),
        "image_size": list(config.dataset.image_size),
    }
