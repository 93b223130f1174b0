"""persist: publish the finished run (report, metrics table, link to the best checkpoint)."""

from __future__ import annotations

from prefect import get_run_logger, task
from prefect.artifacts import create_link_artifact, create_markdown_artifact, create_table_artifact

from handgesture.prefect_refs import CHECKPOINTS_ARTIFACT_SUFFIX, checkpoint_rows
from handgesture.report import metrics_table, render_report
from tasks.artifact_keys import artifact_key
from tasks.retry import retry_unless_bad_input


@task(name="persist", retries=2, retry_delay_seconds=[5, 30], retry_condition_fn=retry_unless_bad_input)
def persist_task(config: dict, result: dict, config_path: str | None = None) -> dict:
    experiment = config["storage"]["experiment"]
    create_markdown_artifact(
        render_report(result, config["model"]["name"], config_path),
        key=artifact_key(experiment, "report"),
        description="training report",
    )
    create_table_artifact(
        metrics_table(result),
        key=artifact_key(experiment, "metrics"),
        description="validation metrics per epoch",
    )
    # Read back by `resume=prefect://flow-runs/<id>`: the one artifact a later run resolves through the API.
    create_table_artifact(
        checkpoint_rows(result["run_uri"], result["best_checkpoint"], result["last_checkpoint"]),
        key=artifact_key(experiment, CHECKPOINTS_ARTIFACT_SUFFIX.lstrip("-")),
        description="this run's folder and its last and best checkpoints",
    )
    best = result["best_checkpoint"] or result["last_checkpoint"]
    if best:
        create_link_artifact(
            best, link_text="best checkpoint", key=artifact_key(experiment, "best-checkpoint")
        )
    get_run_logger().info(
        "run %s: best gesture F1 %.4f at %s", result["run_uri"], result["best_metric"], best
    )
    keys = (
        "run_uri",
        "best_checkpoint",
        "last_checkpoint",
        "metrics",
        "epochs",
        "best_metric",
        "resumed_from",
        "storage_overrides",
    )
    return {key: result[key] for key in keys}
