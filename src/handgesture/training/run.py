"""One training run, read straight down like torchvision's reference `main`: set up, restore, fit, finish.

This is what the Prefect train task calls, and what a notebook or shell can call directly.
"""

from __future__ import annotations

import logging
import secrets
import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from handgesture.checkpoints.lease import default_owner
from handgesture.checkpoints.run_folder import Retention, RunFolder, run_uri
from handgesture.config import Config, config_hash, to_yaml
from handgesture.data.loaders import DataBundle, build_data
from handgesture.data.prepare import PreparedData, prepare_data
from handgesture.errors import DataError, StorageError
from handgesture.metrics import scalars
from handgesture.storage import open_store, s3_settings
from handgesture.tracking import Tracker
from handgesture.training.committer import Committer, stop_on_sigterm
from handgesture.training.engine import Hooks, Progress, Trainer, evaluate, fit
from handgesture.training.progress_bars import ProgressBars
from handgesture.training.resume import start_point
from handgesture.training.setup import build_trainer, pick_device, seed_everything
from handgesture.training.state import Lineage, TrainingState
from handgesture.training.summary import RunSummary, best_scalars, hparams_of, summarize

log = logging.getLogger(__name__)
EpochCallback = Callable[[Progress, dict[str, float]], None]


def run_training(
    config: Config,
    *,
    resume: str | None = None,
    run_name: str | None = None,
    flow_run_id: str | None = None,
    prepared: PreparedData | None = None,
    on_epoch: EpochCallback | None = None,
    show_progress: bool = False,
) -> RunSummary:
    """Train per `config` on the `prepared` data (prepared here when not given).

    A run folder that already holds committed checkpoints (a retried task, a re-run flow run, a restarted
    process) continues from its own newest one; otherwise `resume`, when given, is where training starts.
    The run folder is leased to this run (or this flow run) until it finishes.
    """
    resume = resume or config.checkpoint.resume
    run = set_up(config, prepared or prepare_data(config), run_name, flow_run_id)
    try:
        parent = start_point(run.state, config, run.folder, resume)
        run.begin(parent, flow_run_id, resume)
        metrics = train(run, on_epoch, show_progress)
    finally:
        run.finish(failing=sys.exc_info()[1])
    return run.summary(metrics, parent)


@dataclass
class TrainingRun:
    """What one run trains with and writes to; built by `set_up`."""

    config: Config
    name: str
    data: DataBundle
    trainer: Trainer
    state: TrainingState
    folder: RunFolder
    steps_per_epoch: int
    tracker: Tracker | None = None

    def begin(self, parent: str | None, flow_run_id: str | None, resume: str | None) -> None:
        """Record where the run came from (config.yaml, the manifest's header, lineage); start tracking."""
        name, folder = self.name, self.folder
        folder.write_text("config.yaml", to_yaml(self.config))
        header = {"run": name, "run_uri": folder.uri, "parent": parent, "flow_run_id": flow_run_id}
        folder.write_manifest(**header, resume_request=resume)
        self.state.lineage = Lineage(name, folder.uri, flow_run_id, parent, config_hash(self.config))
        if self.config.tracking.tensorboard:
            self.tracker = Tracker(folder.tensorboard_dir(), self.config.dataset.targets)
        log.info(
            "run %s on %s: %d train / %d val samples, %d missing images skipped",
            folder.uri,
            self.trainer.device,
            self.data.train_size,
            self.data.val_size,
            self.data.missing_images,
        )

    def finish(self, failing: BaseException | None) -> None:
        """Close tracking and wait for uploads; when the run is already `failing`, don't mask that error."""
        try:
            if self.tracker:
                self.tracker.close()
                self.folder.sync_tensorboard(self.tracker.log_dir)
            self.folder.close(self.config.storage.upload_timeout)
        except StorageError as exc:
            if failing is None:
                raise
            log.warning("uploads not confirmed after the run failed: %s", exc)

    def summary(self, metrics: dict[str, float], parent: str | None) -> RunSummary:
        return summarize(
            self.folder,
            self.trainer.progress,
            metrics,
            missing_images=self.data.missing_images,
            data_notes=self.data.notes,
            skipped_images=self.trainer.skipped_images + int(metrics.get("skipped_images", 0)),
            resumed_from=parent,
            finetune_skipped=self.trainer.finetune_skipped,
            config=self.config,
        )


def set_up(
    config: Config, prepared: PreparedData, run_name: str | None, flow_run_id: str | None
) -> TrainingRun:
    """Seeds, device, loaders, trainer and the run's folder (nothing is written to it yet)."""
    seed_everything(config.random_state, config.deterministic)
    device = pick_device(config.device)
    data = build_data(config, device, prepared)
    steps_per_epoch = data.train_size // config.train_params.train_batch_size
    if steps_per_epoch == 0:
        raise DataError(
            f"the training split has {data.train_size} samples, fewer than "
            f"train_params.train_batch_size={config.train_params.train_batch_size}"
        )
    trainer = build_trainer(config, device, steps_per_epoch)
    name = run_name or config.storage.run_name or new_run_name()
    uri = run_uri(config.storage.uri, config.storage.experiment, name)
    retention = Retention(config.checkpoint.keep_last, config.checkpoint.keep_best)
    folder = RunFolder(
        open_store(uri, s3_settings(config.storage)), retention, owner=default_owner(flow_run_id)
    )
    return TrainingRun(
        config, name, data, trainer, TrainingState(trainer, config, steps_per_epoch), folder, steps_per_epoch
    )


def new_run_name() -> str:
    return f"{datetime.now(UTC):%Y%m%d-%H%M%S}-{secrets.token_hex(3)}"


def train(run: TrainingRun, on_epoch: EpochCallback | None, show_progress: bool) -> dict[str, float]:
    """Fit up to `train_params.epochs`, committing checkpoints as it goes; the last validation metrics,
    and the test split's (`test/...`) when there is one."""
    config, trainer, data = run.config, run.trainer, run.data
    committer = Committer(run.state.dump, run.folder, config.checkpoint)
    epochs = config.train_params.epochs
    bars = ProgressBars(show_progress, epochs, trainer.progress.epoch, run.steps_per_epoch)
    with stop_on_sigterm(committer), bars:
        batches = bars.wrap(data.train_batches, config.train_params.train_batch_size)
        last = fit(trainer, epochs, batches, data.val_batches, _hooks(run, committer, bars, on_epoch))
    if not last:
        log.warning(
            "the checkpoint is already at epoch %d >= train_params.epochs=%d: nothing to train; "
            "raise train_params.epochs to continue",
            trainer.progress.epoch,
            epochs,
        )
    metrics = scalars(last)
    if data.test_batches is not None:
        metrics |= {f"test/{k}": v for k, v in scalars(evaluate(trainer, data.test_batches())).items()}
    if run.tracker:
        run.tracker.test(trainer.progress.global_step, metrics)
        run.tracker.hparams(hparams_of(config), best_scalars(trainer.progress))
    return metrics


def _hooks(
    run: TrainingRun, committer: Committer, bars: ProgressBars, on_epoch: EpochCallback | None
) -> Hooks:
    tracker = run.tracker

    def on_step(progress: Progress, values: dict[str, float] | None) -> None:
        if tracker and values:
            tracker.step(progress.global_step, values)
        committer.after_step(progress)

    def on_epoch_end(progress: Progress, metrics: dict[str, Any], _improved: bool) -> None:
        # The epoch's event files go first: uploads keep commit order, so once the epoch's manifest is in
        # the store, its TensorBoard points are too.
        if tracker:
            tracker.epoch(progress.global_step, progress.epoch, metrics)
            run.folder.sync_tensorboard(tracker.log_dir)
        committer.commit(scalars(metrics))
        bars.epoch_done(metrics)
        if on_epoch:
            on_epoch(progress, scalars(metrics))

    return Hooks(on_step=on_step, on_epoch_end=on_epoch_end)
