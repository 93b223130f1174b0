"""One training run, start to finish: data, model, resume, fit, checkpoints and tracking.

This is what the Prefect train task calls, and what a notebook or shell can call directly.
"""

from __future__ import annotations

import logging
import secrets
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from handgesture import checkpoint as ckpt
from handgesture.assemble import build_data, build_trainer, pick_device, seed_everything
from handgesture.committer import Committer, stop_on_sigterm
from handgesture.config import Config, config_hash, to_dict, to_yaml
from handgesture.data.annotations import DataError
from handgesture.engine import BEST_METRIC, Hooks, Trainer, fit
from handgesture.prepare import ensure_dataset
from handgesture.restore import s3_settings, shape_of, start_point
from handgesture.run_outputs import (
    best_scalars,
    evaluate_test,
    finish,
    hparams_of,
    scalars,
    storage_overrides,
    summarize,
    sync_tensorboard,
    tensorboard_dir,
)
from handgesture.runs import Retention, RunFolder
from handgesture.storage import open_store
from handgesture.tracking import Tracker

log = logging.getLogger(__name__)
EpochCallback = Callable[[ckpt.Progress, dict[str, Any]], None]


def new_run_name() -> str:
    return f"{datetime.now(UTC):%Y%m%d-%H%M%S}-{secrets.token_hex(3)}"


def run_uri(config: Config, run_name: str) -> str:
    base = config.storage.uri.rstrip("/")
    if "://" not in base:
        base = str(Path(base).expanduser().resolve())
    return f"{base}/{config.storage.experiment}/{run_name}"


def run_training(
    config: Config,
    *,
    resume: str | None = None,
    run_name: str | None = None,
    flow_run_id: str | None = None,
    on_epoch: EpochCallback | None = None,
    show_progress: bool = False,
) -> dict[str, Any]:
    """Train per `config`; returns a small, plain summary.

    A run folder that already holds committed checkpoints (a retried task, a re-run flow run, a restarted
    process) continues from its own newest one; otherwise `resume`, when given, is where training starts.
    """
    ensure_dataset(config)
    seed_everything(config.random_state, config.deterministic)
    device = pick_device(config.device)
    data = build_data(config, device)
    steps_per_epoch = data.train_size // config.train_params.train_batch_size
    if steps_per_epoch == 0:
        raise DataError(
            f"the training split has {data.train_size} samples, fewer than "
            f"train_params.train_batch_size={config.train_params.train_batch_size}"
        )
    trainer = build_trainer(config, device, steps_per_epoch)
    run_name = run_name or config.storage.run_name or new_run_name()
    run = RunFolder(
        open_store(run_uri(config, run_name), s3_settings(config)),
        Retention(config.checkpoint.keep_last, config.checkpoint.keep_best),
    )
    parent = start_point(trainer, config, run, resume)
    run.write_text("config.yaml", to_yaml(config))
    run.write_manifest(run=run_name, run_uri=run.uri, parent=parent, flow_run_id=flow_run_id)
    lineage = ckpt.Lineage(run_name, run.uri, flow_run_id, parent, config_hash(config))
    log.info(
        "run %s on %s: %d train / %d val samples, %d missing images skipped",
        run.uri,
        device,
        data.train_size,
        data.val_size,
        data.missing_images,
    )
    tb_dir = tensorboard_dir(run.store, run_name)
    tracker = (
        Tracker(tb_dir, config.dataset.targets, config.train_params.log_every_n_steps)
        if (config.tracking.tensorboard)
        else None
    )
    committer = Committer(trainer, run, _checkpoint_builder(config, lineage), config.checkpoint)
    try:
        with stop_on_sigterm(committer):
            metrics = _fit(
                trainer, config, data, steps_per_epoch, _hooks(committer, tracker, on_epoch), show_progress
            )
        test = evaluate_test(trainer, data)
        if tracker:
            tracker.hparams(hparams_of(config), best_scalars(trainer.progress))
    finally:
        finish(run, tracker, config.storage.upload_timeout, failing=sys.exc_info()[1])
    summary = summarize(run, trainer, data, metrics, test, parent)
    summary["storage_overrides"] = storage_overrides(config)
    return summary


def _fit(trainer, config: Config, data, steps_per_epoch: int, hooks: Hooks, show_progress: bool):
    epochs = config.train_params.epochs
    batch_size = config.train_params.train_batch_size
    with tqdm(total=epochs, initial=trainer.progress.epoch, desc="epochs", disable=not show_progress) as bar:

        def train_batches(epoch: int, position: int):
            total = steps_per_epoch - position // batch_size
            batches = data.train_batches(epoch, position)
            return tqdm(
                batches, desc=f"epoch {epoch + 1}", leave=False, total=total, disable=not show_progress
            )

        hooks.on_epoch_end = _chain(hooks.on_epoch_end, lambda _p, m, _i: _advance(bar, m))
        metrics = fit(trainer, epochs, train_batches, data.val_batches, hooks)
    if not metrics:
        log.warning(
            "the checkpoint is already at epoch %d >= train_params.epochs=%d: nothing to train; "
            "raise train_params.epochs to continue",
            trainer.progress.epoch,
            epochs,
        )
    return metrics


def _checkpoint_builder(config: Config, lineage: ckpt.Lineage):
    config_dict = to_dict(config)

    def build(trainer: Trainer, metrics: dict[str, float]) -> dict[str, Any]:
        return ckpt.build_checkpoint(
            model=trainer.model,
            optimizer=trainer.optimizer,
            scheduler=trainer.scheduler,
            scaler=trainer.scaler,
            progress=trainer.progress,
            lineage=lineage,
            config=config_dict,
            metrics=metrics,
            **shape_of(config),
        )

    return build


def _hooks(committer: Committer, tracker: Tracker | None, on_epoch: EpochCallback | None) -> Hooks:
    def on_step(progress, values):
        if tracker:
            tracker.step(progress.global_step, values)
        committer.after_step(progress)

    def on_epoch_end(progress, metrics, _improved_in_lineage):
        committer.commit(scalars(metrics))
        if tracker:
            tracker.epoch(progress.epoch, metrics)
            sync_tensorboard(committer.run, tracker.log_dir)
        if on_epoch:
            on_epoch(progress, scalars(metrics))

    return Hooks(on_step=on_step, on_epoch_end=on_epoch_end)


def _advance(bar, metrics: dict[str, Any]) -> None:
    bar.set_postfix(val_f1=f"{metrics[BEST_METRIC]:.3f}", loss=f"{metrics['train/loss']:.3f}")
    bar.update(1)


def _chain(first, second):
    def both(*args):
        if first:
            first(*args)
        second(*args)

    return both
