"""Where a run starts: its own newest checkpoint, a `resume` URI (full state or fine-tune), or scratch; and
the config a resumed run continues with."""

from __future__ import annotations

import logging
from pathlib import Path

from handgesture.checkpoint_config import checkpoint_config, layered
from handgesture.checkpoints.locate import resolve_checkpoint
from handgesture.checkpoints.run_folder import RunFolder
from handgesture.config import Config, load_config, to_dict
from handgesture.errors import ConfigError
from handgesture.storage import s3_settings
from handgesture.training.state import TrainingState

log = logging.getLogger(__name__)


def run_config(path: str | Path | None, overrides: list[str], resume: str | None) -> Config:
    """The config of a run. A resume (continue mode) continues the checkpoint's own recipe: architecture,
    classes, image size, data, optimizer and schedule (`checkpoint_config.CHECKPOINT_KEYS`). Everything the
    checkpoint may not decide (where the run is written, cached or sent, devices, cadence) comes from this
    run's own config file and overrides, and the overrides apply on top of both."""
    config = load_config(path, overrides)
    if not (resume or config.checkpoint.resume) or config.checkpoint.resume_mode != "continue":
        return config
    if path and resume:
        log.info("%s gives this run's storage, devices and caches; the recipe is the checkpoint's", path)
    resolved = resolve_checkpoint(resume or config.checkpoint.resume, s3_settings(config.storage))
    base = layered(to_dict(config), checkpoint_config(resolved.checkpoint, resolved.uri))
    return load_config(None, overrides, base=(f"the config of checkpoint {resolved.uri}", base))


def start_point(state: TrainingState, config: Config, run: RunFolder, resume: str | None) -> str | None:
    """Restore from the run's own newest checkpoint, else from `resume`; returns the lineage parent.

    The checkpoint a run continues from is protected from the run's retention.
    """
    if run.manifest["checkpoints"]:
        if resume and run.manifest.get("resume_request") != resume:
            raise ConfigError(
                f"run folder {run.uri} already holds checkpoints of a run that started from "
                f"{run.manifest.get('resume_request') or 'scratch'}, so resume {resume} would be ignored: "
                "give this run another storage.run_name, or drop the resume to continue that run"
            )
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
