"""One training run, start to finish: data, model, resume, fit, checkpoints and tracking.

This is what the Prefect train task calls, and what a notebook or shell can call directly.
"""

from __future__ import annotations

import logging
import secrets
import sys
import tempfile
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from handgesture import checkpoint as ckpt
from handgesture.assemble import build_data, build_trainer, ensure_dataset, pick_device, seed_everything
from handgesture.committer import Committer, stop_on_sigterm
from handgesture.config import Config, config_hash, to_dict, to_yaml
from handgesture.data.annotations import DataError
from handgesture.engine import BEST_METRIC, Hooks, Trainer, fit
from handgesture.resolve import resolve_checkpoint
from handgesture.runs import Retention, RunFolder
from handgesture.storage import S3Settings, StorageError, Store, open_store
from handgesture.tracking import Tracker

log = logging.getLogger(__name__)
EpochCallback = Callable[[ckpt.Progress, dict[str, Any]], None]


def new_run_name() -> str:
    return f"{datetime.now(UTC):%Y%m%d-%H%M%S}-{secrets.token_hex(3)}"


def s3_settings(config: Config) -> S3Settings:
    return S3Settings(
        block=config.storage.block,
        endpoint_url=config.storage.endpoint_url,
        max_retries=config.storage.max_retries,
    )


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
    parent = _start_point(trainer, config, run, resume)
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
    tb_dir = _tensorboard_dir(run.store, run_name)
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
        test = _evaluate_test(trainer, data)
        if tracker:
            tracker.hparams(_hparams(config), _best_scalars(trainer.progress))
    finally:
        _finish(run, tracker, config.storage.upload_timeout, failing=sys.exc_info()[1])
    summary = _summary(run, trainer, data, metrics, test, parent)
    summary["storage_overrides"] = _storage_overrides(config)
    return summary


def _start_point(trainer: Trainer, config: Config, run: RunFolder, resume: str | None) -> str | None:
    """Restore from the run's own newest checkpoint, else from `resume`; returns the lineage parent."""
    if run.manifest["checkpoints"]:
        own = _restore(trainer, config, run.uri)
        run.retention.protected.add(own.removeprefix(run.uri).lstrip("/"))
        log.info("continuing run %s from its own checkpoint %s", run.uri, own)
        return run.manifest.get("parent")
    if not resume:
        return None
    if config.checkpoint.resume_mode == "finetune":
        return _finetune_from(trainer, config, resume)
    parent = _restore(trainer, config, resume)
    if parent.startswith(run.uri.rstrip("/") + "/"):
        run.retention.protected.add(parent.removeprefix(run.uri).lstrip("/"))
    return parent


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


def _restore(trainer: Trainer, config: Config, resume: str) -> str:
    resolved = resolve_checkpoint(resume, s3_settings(config))
    checkpoint = resolved.checkpoint
    ckpt.check_compatible(checkpoint, _shape(config), resolved.uri)
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


def _finetune_from(trainer: Trainer, config: Config, source: str) -> str:
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


def _shape(config: Config) -> dict[str, Any]:
    return {
        "model_name": config.model.name,
        "class_names": list(config.dataset.targets),
        "image_size": list(config.dataset.image_size),
    }


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
            **_shape(config),
        )

    return build


def _hooks(committer: Committer, tracker: Tracker | None, on_epoch: EpochCallback | None) -> Hooks:
    def on_step(progress, values):
        if tracker:
            tracker.step(progress.global_step, values)
        committer.after_step(progress)

    def on_epoch_end(progress, metrics, _improved_in_lineage):
        committer.commit(_scalars(metrics))
        if tracker:
            tracker.epoch(progress.epoch, metrics)
            _sync_tensorboard(committer.run, tracker.log_dir)
        if on_epoch:
            on_epoch(progress, _scalars(metrics))

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


def _tensorboard_dir(store: Store, run_name: str) -> Path:
    """Local stores write event files in place; remote ones write to a local folder synced each epoch."""
    local = store.local_path("tensorboard")
    return local if local is not None else Path(tempfile.mkdtemp(prefix=f"tb-{run_name}-"))


def _sync_tensorboard(run: RunFolder, tb_dir: Path) -> None:
    """Queue event files for a remote run folder (local stores already write them in place)."""
    if run.store.local_path("tensorboard") is not None:
        return
    for path in sorted(tb_dir.rglob("*")):
        if path.is_file():
            run.put_file(path, f"tensorboard/{path.relative_to(tb_dir).as_posix()}")


def _finish(run: RunFolder, tracker: Tracker | None, upload_timeout: float, failing: BaseException | None):
    """Close tracking and wait for uploads; when the run is already `failing`, don't mask that error."""
    try:
        if tracker:
            tracker.close()
            _sync_tensorboard(run, tracker.log_dir)
        run.close(upload_timeout)
    except StorageError as exc:
        if failing is None:
            raise
        log.warning("uploads not confirmed after the run failed: %s", exc)


def _evaluate_test(trainer: Trainer, data) -> dict[str, float]:
    if data.test_batches is None:
        return {}
    from handgesture.engine import evaluate

    return {f"test/{k}": v for k, v in _scalars(evaluate(trainer, data.test_batches())).items()}


def _scalars(metrics: dict[str, Any]) -> dict[str, float]:
    return {k: float(v) for k, v in metrics.items() if isinstance(v, int | float)}


def _best_scalars(progress: ckpt.Progress) -> dict[str, float]:
    return {"best_gesture_f1": progress.best_metric, "best_epoch": float(progress.best_epoch)}


def _hparams(config: Config) -> dict[str, Any]:
    return {
        "model": config.model.name,
        "lr": config.optimizer.lr,
        "epochs": config.train_params.epochs,
        "batch_size": config.train_params.train_batch_size,
        "image_size": config.dataset.image_size[0],
        "pretrained": config.model.pretrained,
        "cosine": config.scheduler.cosine,
    }


def _storage_overrides(config: Config) -> list[str]:
    """What a resume command needs besides the URI to reach this storage (names only, never secrets)."""
    settings = {"storage.endpoint_url": config.storage.endpoint_url, "storage.block": config.storage.block}
    return [f"{key}={value}" for key, value in settings.items() if value]


def _summary(run: RunFolder, trainer: Trainer, data, metrics, test, parent) -> dict[str, Any]:
    entries = run.manifest["checkpoints"]
    best = run.manifest.get("best")
    return {
        "run_uri": run.uri,
        "best_checkpoint": best["uri"] if best else None,
        "last_checkpoint": entries[-1]["uri"] if entries else None,
        "epochs": trainer.progress.epoch,
        "global_step": trainer.progress.global_step,
        "best_metric": trainer.progress.best_metric,
        "best_epoch": trainer.progress.best_epoch,
        "metrics": {**_scalars(metrics), **test},
        "history": trainer.progress.history,
        "missing_images": data.missing_images,
        "skipped_images": trainer.skipped_images + int(metrics.get("skipped_images", 0)),
        "resumed_from": parent,
        "finetune_skipped": trainer.finetune_skipped,
        "metric_name": BEST_METRIC,
    }
