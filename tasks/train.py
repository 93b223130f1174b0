"""train: the GPU-capable task. Never cached; a retried attempt continues from the run's last checkpoint."""

from __future__ import annotations

import logging

from prefect import get_run_logger, task
from prefect.artifacts import create_progress_artifact, update_progress_artifact
from prefect.cache_policies import NO_CACHE
from prefect.runtime import flow_run

from handgesture.checkpoints.start import StartPoint
from handgesture.config import Config
from handgesture.data.prepare import PreparedData
from handgesture.training import RunSummary, run_training
from tasks.artifact_keys import artifact_key
from tasks.retry import RETRY_POLICY


# A run past a day is taken as stuck (a hung loader, a GPU that stopped answering): it fails, and the retry
# continues from its last checkpoint. For longer runs: train_task.with_options(timeout_seconds=...).
@task(name="train", cache_policy=NO_CACHE, timeout_seconds=24 * 3600, **RETRY_POLICY)
def train_task(config: Config, prepared: PreparedData, start: StartPoint | None = None) -> RunSummary | None:
    logger = get_run_logger()
    # Prefect attaches its handlers to the library's logger (PREFECT_LOGGING_EXTRA_LOGGERS) but not a level.
    logging.getLogger("handgesture").setLevel(logger.getEffectiveLevel())
    epochs = config.train_params.epochs
    progress_id = create_progress_artifact(
        0.0, key=artifact_key(config.storage.experiment, "progress"), description=f"epochs done of {epochs}"
    )

    def on_epoch(progress, metrics):
        update_progress_artifact(
            progress_id, 100.0 * progress.epoch / epochs, description=f"epoch {progress.epoch}/{epochs}"
        )

    # Named after the flow run, so a retry or a re-run of the same flow run finds its own folder.
    run_name = config.storage.run_name or f"{flow_run.name}-{str(flow_run.id)[:8]}"
    logger.info("training %s into run %s", config.model.name, run_name)
    result = run_training(
        config,
        resume=start,
        run_name=run_name,
        flow_run_id=str(flow_run.id),
        prepared=prepared,
        on_epoch=on_epoch,
        show_progress=True,
    )
    # A data-parallel run's ranks do not call on_epoch: its progress moves once, when they are done. A run
    # that early stopping ended is done too: it finished, short of its epochs.
    done = f"epoch {result.epochs}/{epochs}, stopped early" if result and result.stopped_early else None
    update_progress_artifact(progress_id, 100.0, description=done or f"epoch {epochs}/{epochs}")
    return result
