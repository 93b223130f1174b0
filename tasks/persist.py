"""persist: publish the finished run (report, metrics table, link to the best checkpoint)."""

from __future__ import annotations

from prefect import get_run_logger, task
from prefect.artifacts import create_link_artifact, create_markdown_artifact, create_table_artifact
from prefect.runtime import deployment, flow_run

from handgesture.config import Config
from handgesture.report import checkpoints_table, metrics_table, render_report
from handgesture.training import RunSummary
from tasks.artifact_keys import artifact_key
from tasks.retry import RETRY_POLICY


@task(name="persist", **RETRY_POLICY)
def persist_task(config: Config, summary: RunSummary) -> RunSummary:
    experiment = config.storage.experiment
    # A deployment's run is continued through the deployment: a worker-local path means nothing elsewhere.
    started_by = f"{flow_run.flow_name}/{deployment.name}" if deployment.id else None
    create_markdown_artifact(
        render_report(summary, config.model.name, started_by, flow_run.id),
        key=artifact_key(experiment, "report"),
        description="training report",
    )
    create_table_artifact(
        metrics_table(summary),
        key=artifact_key(experiment, "metrics"),
        description="validation metrics per epoch",
    )
    # The run's URIs as data, for whatever reads the run through the API (the deployment tests do).
    create_table_artifact(
        checkpoints_table(summary),
        key=artifact_key(experiment, "checkpoints"),
        description="this run's folder and its last and best checkpoints",
    )
    best = summary.best_or_last
    if best and "://" in best:  # a link the UI can follow; a local path is no link (it is in the report)
        create_link_artifact(
            best, link_text="best checkpoint", key=artifact_key(experiment, "best-checkpoint")
        )
    get_run_logger().info("run %s: best gesture F1 %.4f at %s", summary.run_uri, summary.best_metric, best)
    return summary
