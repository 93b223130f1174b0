"""What a finished run hands on: `RunSummary`, read by the flow, the report, the command and promotion."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from handgesture.checkpoints.run_folder import RunFolder
from handgesture.config import Config
from handgesture.config_checks import config_value
from handgesture.metrics import BEST_METRIC
from handgesture.training.engine import Progress


@dataclass
class RunSummary:
    run_uri: str
    best_checkpoint: str | None
    last_checkpoint: str | None
    epochs: int  # completed epochs (a total, across resumes)
    global_step: int
    best_metric: float
    best_epoch: int
    metrics: dict[str, float]  # the last validation metrics, and test/... when there is a test split
    history: list[dict[str, float]]  # one row of validation metrics per epoch
    missing_images: int
    skipped_images: int
    resumed_from: str | None = None
    data_notes: list[str] = field(default_factory=list)  # what reading the data skipped, and why
    finetune_skipped: list[str] = field(default_factory=list)  # tensors a fine-tune start re-initialised
    storage_overrides: list[str] = field(default_factory=list)  # what a resume needs to reach the storage
    # Where a resumed run goes: beside this one (a checkpoint's own config never decides it).
    location_overrides: list[str] = field(default_factory=list)
    metric_name: str = BEST_METRIC
    best_weights: str | None = None  # best_weights.pth: the best checkpoint's weights alone
    stopped_early: str | None = None  # why train_params.early_stopping ended the run; None: it did not

    @property
    def best_or_last(self) -> str | None:
        """The checkpoint to continue from or to promote: the best one, else the newest."""
        return self.best_checkpoint or self.last_checkpoint

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def summarize(
    run: RunFolder,
    progress: Progress,
    metrics: dict[str, float],
    *,
    missing_images: int,
    skipped_images: int,
    data_notes: list[str],
    resumed_from: str | None,
    finetune_skipped: list[str],
    config: Config,
    stopped_early: str | None = None,
) -> RunSummary:
    entries = run.manifest["checkpoints"]
    best = run.manifest.get("best")
    return RunSummary(
        run_uri=run.uri,
        best_checkpoint=best["uri"] if best else None,
        last_checkpoint=entries[-1]["uri"] if entries else None,
        epochs=progress.epoch,
        global_step=progress.global_step,
        best_metric=progress.best_metric,
        best_epoch=progress.best_epoch,
        metrics=metrics,
        history=progress.history,
        missing_images=missing_images,
        skipped_images=skipped_images,
        data_notes=data_notes,
        resumed_from=resumed_from,
        finetune_skipped=finetune_skipped,
        storage_overrides=storage_overrides(config),
        location_overrides=[
            f"storage.uri={config.storage.uri}",
            f"storage.experiment={config.storage.experiment}",
        ],
        best_weights=run.manifest["best_weights"]["uri"] if run.manifest.get("best_weights") else None,
        stopped_early=stopped_early,
    )


def storage_overrides(config: Config) -> list[str]:
    """What a resume command needs besides the URI to reach this storage (names only, never secrets)."""
    settings = {"storage.endpoint_url": config.storage.endpoint_url, "storage.block": config.storage.block}
    return [f"{key}={value}" for key, value in settings.items() if value]


def hparams_of(config: Config) -> dict[str, Any]:
    """The hyperparameters TensorBoard's HParams tab compares runs by, and `tracking.hparams`' keys."""
    return {
        "model": config.model.name,
        "lr": config.optimizer.lr,
        "epochs": config.train_params.epochs,
        "batch_size": config.train_params.train_batch_size,
        "image_size": config.dataset.image_size[0],
        "pretrained": config.model.pretrained,
        "scheduler": config.scheduler.schedule,
    } | {key: config_value(config, key) for key in config.tracking.hparams}


def best_scalars(progress: Progress) -> dict[str, float]:
    return {"best_gesture_f1": progress.best_metric, "best_epoch": float(progress.best_epoch)}
