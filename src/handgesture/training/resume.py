"""Where a run starts: its own newest checkpoint, a `resume` URI (full state or fine-tune), or scratch."""

from __future__ import annotations

import logging

from handgesture.checkpoints.locate import resolve_checkpoint
from handgesture.checkpoints.run_folder import RunFolder
from handgesture.config import Config
from handgesture.storage import s3_settings
from handgesture.training.state import TrainingState

log = logging.getLogger(__name__)


def start_point(state: TrainingState, config: Config, run: RunFolder, resume: str | None) -> str | None:
    """Restore from the run's own newest checkpoint, else from `resume`; returns the lineage parent.

    The checkpoint a run continues from is protected from the run's retention.
    """
    if run.manifest["checkpoints"]:
        own = restore(state, config, run.uri)
        _protect(run, own)
        log.info("continuing run %s from its own checkpoint %s", run.uri, own)
        return run.manifest.get("parent")
    if not resume:
        return None
    if config.checkpoint.resume_mode == "finetune":
        return finetune_from(state, config, resume)
    parent = restore(state, config, resume)
    _protect(run, parent)
    return parent


def restore(state: TrainingState, config: Config, resume: str) -> str:
    """The full training state of the checkpoint `resume` names; returns its URI."""
    resolved = resolve_checkpoint(resume, s3_settings(config.storage))
    state.restore(resolved.checkpoint, resolved.uri)
    progress = state.trainer.progress
    log.info("resumed from %s at epoch %d, step %d", resolved.uri, progress.epoch, progress.global_step)
    return resolved.uri


def finetune_from(state: TrainingState, config: Config, source: str) -> str:
    """Start fresh (optimizer, schedule, counters) from the weights that fit; other heads stay initialised."""
    resolved = resolve_checkpoint(source, s3_settings(config.storage))
    skipped = state.restore_weights(resolved.checkpoint, resolved.uri)
    log.info(
        "fine-tuning from %s; re-initialised %d tensors that do not fit: %s",
        resolved.uri,
        len(skipped),
        ", ".join(skipped) or "none",
    )
    return resolved.uri


def _protect(run: RunFolder, checkpoint_uri: str) -> None:
    """Retention never deletes `checkpoint_uri` when it lies in this run's own folder."""
    prefix = run.uri.rstrip("/") + "/"
    if checkpoint_uri.startswith(prefix):
        run.retention.protected.add(checkpoint_uri.removeprefix(prefix))
