"""One training run, read straight down like torchvision's reference `main`: set up, restore, fit, finish.

This is what the Prefect train task calls, and what a notebook or shell can call directly. A data-parallel
run (`train_params.devices` > 1, or several nodes) is the same code on every rank: rank 0 restores and
writes, the others take rank 0's start and wait for its commits.
"""

from __future__ import annotations

import logging
import os
import secrets
import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

from handgesture.checkpoints.lease import default_owner
from handgesture.checkpoints.run_folder import Retention, RunFolder, run_uri
from handgesture.checkpoints.start import StartPoint
from handgesture.cluster import SINGLE, Cluster
from handgesture.config import Config, config_hash, to_yaml
from handgesture.data.loaders import DataBundle, build_data
from handgesture.data.prepare import PreparedData, prepare_data
from handgesture.errors import ConfigError, DataError, StorageError
from handgesture.metrics import scalars
from handgesture.storage import open_store, s3_settings
from handgesture.tracking import Tracker
from handgesture.training.committer import Committer, stop_on_sigterm
from handgesture.training.distributed import is_data_parallel, launch
from handgesture.training.early_stopping import stop_reason
from handgesture.training.engine import Hooks, Progress, Trainer, evaluate, fit, settle
from handgesture.training.progress_bars import ProgressBars
from handgesture.training.resume import request_of, start_point
from handgesture.training.setup import (
    build_trainer,
    global_batch_size,
    pick_device,
    rank_device,
    seed_everything,
)
from handgesture.training.state import Lineage, TrainingState
from handgesture.training.summary import RunSummary, best_scalars, hparams_of, summarize

log = logging.getLogger(__name__)
EpochCallback = Callable[[Progress, dict[str, float]], None]


def run_training(
    config: Config,
    *,
    resume: str | StartPoint | None = None,
    run_name: str | None = None,
    flow_run_id: str | None = None,
    prepared: PreparedData | None = None,
    on_epoch: EpochCallback | None = None,
    show_progress: bool = False,
) -> RunSummary | None:
    """Train per `config` on the `prepared` data (prepared here when not given).

    A run folder that already holds committed checkpoints (a retried task, a re-run flow run, a restarted
    process) continues from its own newest one; otherwise `resume`, when given, is where training starts:
    a start point resolved at a flow's edge (`resume.run_plan`), or a URI (as `--resume` takes) that rank 0
    resolves.
    The run folder is leased to this run (or this flow run) until it finishes. A data-parallel run launches
    this node's ranks here and returns rank 0's summary (None on the other nodes of a multi-node run).
    `on_epoch(progress, metrics)` is called after each epoch of a single-process run; a data-parallel run
    does not call it (its ranks are processes of their own): its epochs are in its manifest and TensorBoard.
    """
    resume = resume or config.checkpoint.resume
    prepared = prepared or prepare_data(config)
    if not is_data_parallel(config):
        return run_rank(config, SINGLE, resume, run_name, flow_run_id, prepared, on_epoch, show_progress)
    if config.train_params.nnodes > 1 and not (run_name or config.storage.run_name):
        raise ConfigError("train_params.nnodes > 1 needs storage.run_name: every node must write one run")
    name = run_name or config.storage.run_name or new_run_name()
    args = (config, resume, name, flow_run_id, prepared, show_progress)
    return launch(config, name, _rank_main, *args)


def _rank_main(config: Config, resume, run_name, flow_run_id, prepared, show_progress) -> RunSummary | None:
    """One rank of a data-parallel run, in a process of its own that torchrun's launcher started."""
    device = rank_device(config, int(os.environ["LOCAL_RANK"]))
    if device.type == "cuda":
        torch.cuda.set_device(device)
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    try:
        cluster = Cluster.from_env(device)
        return run_rank(config, cluster, resume, run_name, flow_run_id, prepared, None, show_progress)
    finally:
        dist.destroy_process_group()


def run_rank(
    config: Config,
    cluster: Cluster,
    resume: str | StartPoint | None,
    run_name: str | None,
    flow_run_id: str | None,
    prepared: PreparedData,
    on_epoch: EpochCallback | None,
    show_progress: bool,
) -> RunSummary | None:
    """The run on this rank (the only one, on one device); the summary on rank 0, None on the others."""
    run = set_up(config, prepared, run_name, flow_run_id, cluster)
    parent = None
    try:
        if cluster.is_main:
            parent = start_point(run.state, config, run.folder, resume)
            run.begin(parent, flow_run_id, request_of(resume))
        share_start(run)
        metrics = train(run, on_epoch, show_progress and cluster.is_main)
    finally:
        run.finish(failing=sys.exc_info()[1])
    return run.summary(metrics, parent) if cluster.is_main else None


def share_start(run: TrainingRun) -> None:
    """Every rank starts from rank 0's state (its checkpoint, or its fresh model and RNG), then steps
    through DistributedDataParallel, which averages the gradients."""
    trainer, cluster = run.trainer, run.trainer.cluster
    if not cluster.distributed:
        return
    start = cluster.broadcast(run.state.dump({}) if cluster.is_main else None)
    if not cluster.is_main:
        run.state.restore(start, "rank 0's start")
    device_ids = [cluster.device] if cluster.device.type == "cuda" else None
    trainer.parallel_model = DistributedDataParallel(trainer.model, device_ids=device_ids)


@dataclass
class TrainingRun:
    """What one run trains with and writes to; built by `set_up`."""

    config: Config
    name: str
    data: DataBundle
    trainer: Trainer
    state: TrainingState
    folder: RunFolder | None  # None on data-parallel ranks other than 0: they never write
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
        if self.folder is None:
            return
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
            stopped_early=stop_reason(self.trainer.stop, self.trainer.stop_rule),
        )


def set_up(
    config: Config,
    prepared: PreparedData,
    run_name: str | None,
    flow_run_id: str | None,
    cluster: Cluster = SINGLE,
) -> TrainingRun:
    """Seeds, device, loaders, trainer and the run's folder, opened for writing (leased, what a stopped
    writer left finished; nothing of this run is written to it yet; rank 0's only)."""
    seed_everything(config.random_state, config.deterministic)
    device = cluster.device if cluster.distributed else pick_device(config.device)
    data = build_data(config, device, prepared, cluster)
    global_batch = global_batch_size(config, cluster)
    steps_per_epoch = data.train_size // global_batch
    if steps_per_epoch == 0:
        raise DataError(
            f"the training split has {data.train_size} samples, fewer than one global batch: "
            f"train_params.train_batch_size={config.train_params.train_batch_size} x {cluster.world_size} "
            "ranks"
        )
    trainer = build_trainer(config, device, steps_per_epoch, cluster)
    name = run_name or config.storage.run_name or new_run_name()
    folder = _run_folder(config, name, flow_run_id).open_for_writing() if cluster.is_main else None
    return TrainingRun(
        config, name, data, trainer, TrainingState(trainer, config, steps_per_epoch), folder, steps_per_epoch
    )


def _run_folder(config: Config, name: str, flow_run_id: str | None) -> RunFolder:
    uri = run_uri(config.storage.uri, config.storage.experiment, name)
    retention = Retention(config.checkpoint.keep_last, config.checkpoint.keep_best)
    return RunFolder(
        open_store(uri, s3_settings(config.storage)), retention, owner=default_owner(flow_run_id)
    )


def new_run_name() -> str:
    return f"{datetime.now(UTC):%Y%m%d-%H%M%S}-{secrets.token_hex(3)}"


def train(run: TrainingRun, on_epoch: EpochCallback | None, show_progress: bool) -> dict[str, float]:
    """Fit up to `train_params.epochs`, committing checkpoints as it goes; the last validation metrics,
    and the test split's (`test/...`) when there is one."""
    config, trainer, data = run.config, run.trainer, run.data
    # Rank 0 writes; another rank's commit only settles the loss window with it (a collective).
    dump = run.state.dump if trainer.cluster.is_main else (lambda _metrics: settle(trainer))
    committer = Committer(
        dump,
        run.folder,
        config.checkpoint,
        cluster=trainer.cluster,
        agree_every=config.train_params.log_every_n_steps,
    )
    epochs = config.train_params.epochs
    bars = ProgressBars(show_progress, epochs, trainer.progress.epoch, run.steps_per_epoch)
    with stop_on_sigterm(committer), bars:
        batches = bars.wrap(data.train_batches, config.train_params.train_batch_size)
        last = fit(trainer, epochs, batches, data.val_batches, _hooks(run, committer, bars, on_epoch))
    if not last and not trainer.stop.stopped_epoch:  # an early stop says so itself
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
