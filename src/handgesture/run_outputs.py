"""A run's outputs besides checkpoints: TensorBoard files, the final upload wait, the summary it returns."""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path
from typing import Any

from handgesture import checkpoint as ckpt
from handgesture.config import Config
from handgesture.engine import BEST_METRIC, Trainer, evaluate
from handgesture.runs import RunFolder
from handgesture.storage import StorageError, Store
from handgesture.tracking import Tracker

log = logging.getLogger(__name__)


def tensorboard_dir(store: Store, run_name: str) -> Path:
    """Local stores write event files in place; remote ones write to a local folder synced each epoch."""
    local = store.local_path("tensorboard")
    return local if local is not None else Path(tempfile.mkdtemp(prefix=f"tb-{run_name}-"))


def sync_tensorboard(run: RunFolder, tb_dir: Path) -> None:
    """Queue event files for a remote run folder (local stores already write them in place)."""
    if run.store.local_path("tensorboard") is not None:
        return
    for path in sorted(tb_dir.rglob("*")):
        if path.is_file():
            run.put_file(path, f"tensorboard/{path.relative_to(tb_dir).as_posix()}")


def finish(run: RunFolder, tracker: Tracker | None, upload_timeout: float, failing: BaseException | None):
    """Close tracking and wait for uploads; when the run is already `failing`, don't mask that error."""
    try:
        if tracker:
            tracker.close()
            sync_tensorboard(run, tracker.log_dir)
        run.close(upload_timeout)
    except StorageError as exc:
        if failing is None:
            raise
        log.warning("uploads not confirmed after the run failed: %s", exc)


def evaluate_test(trainer: Trainer, data) -> dict[str, float]:
    if data.test_batches is None:
        return {}
    return {f"test/{k}": v for k, v in scalars(evaluate(trainer, data.test_batches())).items()}


def scalars(metrics: dict[str, Any]) -> dict[str, float]:
    return {k: float(v) for k, v in metrics.items() if isinstance(v, int | float)}


def best_scalars(progress: ckpt.Progress) -> dict[str, float]:
    return {"best_gesture_f1": progress.best_metric, "best_epoch": float(progress.best_epoch)}


def hparams_of(config: Config) -> dict[str, Any]:
    return {
        "model": config.model.name,
        "lr": config.optimizer.lr,
        "epochs": config.train_params.epochs,
        "batch_size": config.train_params.train_batch_size,
        "image_size": config.dataset.image_size[0],
        "pretrained": config.model.pretrained,
        "cosine": config.scheduler.cosine,
    }


def storage_overrides(config: Config) -> list[str]:
    """What a resume command needs besides the URI to reach this storage (names only, never secrets)."""
    settings = {"storage.endpoint_url": config.storage.endpoint_url, "storage.block": config.storage.block}
    return [f"{key}={value}" for key, value in settings.items() if value]


def summarize(run: RunFolder, trainer: Trainer, data, metrics, test, parent) -> dict[str, Any]:
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
        "metrics": {**scalars(metrics), **test},
        "history": trainer.progress.history,
        "missing_images": data.missing_images,
        "skipped_images": trainer.skipped_images + int(metrics.get("skipped_images", 0)),
        "resumed_from": parent,
        "finetune_skipped": trainer.finetune_skipped,
        "metric_name": BEST_METRIC,
    }
