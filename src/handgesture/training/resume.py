"""Where a run starts: its own newest checkpoint, a start point (full state or fine-tune), or scratch; and
the config a resumed run continues with."""

from __future__ import annotations

import logging
from pathlib import Path

from handgesture.checkpoint_config import layered
from handgesture.checkpoints.format import check_compatible
from handgesture.checkpoints.locate import Resolved, resolve_checkpoint
from handgesture.checkpoints.run_folder import RunFolder
from handgesture.checkpoints.start import StartPoint, open_start, resolve_start
from handgesture.config import Config, load_config, to_dict
from handgesture.errors import ConfigError
from handgesture.storage import s3_settings
from handgesture.training.state import TrainingState, shape_of

log = logging.getLogger(__name__)


def run_plan(
    path: str | Path | None, overrides: list[str], resume: str | None
) -> tuple[Config, StartPoint | None]:
    """The config of a run and where it starts, resolved once at the flow's edge: the resume request
    (`resume`, else `checkpoint.resume`) becomes one pinned checkpoint file, or None to start fresh."""
    own = load_config(path, overrides)
    request = resume or own.checkpoint.resume
    if not request:
        return own, None
    start, resolved = resolve_start(request, own.checkpoint.resume_mode, s3_settings(own.storage))
    if start.mode != "continue":
        return own, start
    if path:
        log.info("%s gives this run's storage, devices and caches; the recipe is the checkpoint's", path)
    config = continued_config(own, start, overrides)
    # An override that changes the model's shape (classes, size, architecture) is refused here, before any
    # run folder is made or data prepared, rather than when the train task restores the checkpoint.
    check_compatible(resolved.checkpoint, shape_of(config), start.uri)
    return config, start


def continued_config(own: Config, start: StartPoint, overrides: list[str]) -> Config:
    """A resume (continue mode) continues the checkpoint's own recipe: architecture, classes, image size,
    data, optimizer and schedule (`checkpoint_config.CHECKPOINT_KEYS`). Everything the checkpoint may not
    decide (where the run is written, cached or sent, devices, cadence) stays this run's own, and the
    overrides apply on top of both."""
    base = layered(to_dict(own), start.config)
    return load_config(None, overrides, base=(f"the config of checkpoint {start.uri}", base))


def start_point(
    state: TrainingState, config: Config, run: RunFolder, resume: str | StartPoint | None
) -> str | None:
    """Restore from the run's own newest checkpoint, else from `resume` (a start point, or a request this
    resolves now); returns the lineage parent.

    The checkpoint a run continues from is protected from the run's retention.
    """
    s3 = s3_settings(config.storage)
    if run.manifest["checkpoints"]:
        request = request_of(resume)
        if request and run.manifest.get("resume_request") != request:
            raise ConfigError(
                f"run folder {run.uri} already holds checkpoints of a run that started from "
                f"{run.manifest.get('resume_request') or 'scratch'}, so resume {request} would be ignored: "
                "give this run another storage.run_name, or drop the resume to continue that run"
            )
        own = restore(state, resolve_checkpoint(run.uri, s3))
        _protect(run, own)
        log.info("continuing run %s from its own checkpoint %s", run.uri, own)
        return run.manifest.get("parent")
    if not resume:
        return None
    if isinstance(resume, str):
        resume, _ = resolve_start(resume, config.checkpoint.resume_mode, s3)
    opened = open_start(resume, s3)
    if resume.mode == "finetune":
        return finetune_from(state, opened)
    parent = restore(state, opened)
    _protect(run, parent)
    return parent


def request_of(resume: str | StartPoint | None) -> str | None:
    """What the run was asked to start from, as its manifest records it."""
    return resume.request if isinstance(resume, StartPoint) else resume


def restore(state: TrainingState, resolved: Resolved) -> str:
    """The full training state of the checkpoint `resolved`; returns its URI."""
    state.restore(resolved.checkpoint, resolved.uri)
    progress = state.trainer.progress
    log.info("resumed from %s at epoch %d, step %d", resolved.uri, progress.epoch, progress.global_step)
    return resolved.uri


def finetune_from(state: TrainingState, resolved: Resolved) -> str:
    """Start fresh (optimizer, schedule, counters) from the weights that fit; other heads stay initialised."""
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
