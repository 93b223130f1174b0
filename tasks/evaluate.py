"""evaluate: a checkpoint's metrics on a held-out split, published as artifacts (report, per-class table)."""

from __future__ import annotations

from pathlib import Path

from prefect import get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE

from handgesture.evaluation import EvaluationReport, evaluate_checkpoint, evaluation_plan
from handgesture.report import render_evaluation
from tasks.artifact_keys import artifact_key
from tasks.retry import RETRY_POLICY


@task(name="evaluate", cache_policy=NO_CACHE, **RETRY_POLICY)
def evaluate_task(
    checkpoint: str, config: str | None, overrides: list[str], split: str | None, out: str | None
) -> EvaluationReport:
    resolved, start = evaluation_plan(checkpoint, config, overrides)  # the checkpoint, resolved once
    report = evaluate_checkpoint(start, resolved, Path(out) if out else None, split=split)
    experiment = resolved.storage.experiment
    create_markdown_artifact(
        render_evaluation(report), key=artifact_key(experiment, "evaluation"), description="evaluation report"
    )
    create_table_artifact(
        report.per_class["gesture"],
        key=artifact_key(experiment, "evaluation-per-class"),
        description=f"gesture metrics per class on the {report.split} split",
    )
    get_run_logger().info(
        "%s on the %s split: gesture F1 %.4f; report in %s",
        checkpoint,
        report.split,
        report.weighted["gesture"].get("f1_score", float("nan")),
        report.files["report"],
    )
    return report
