"""current-best and promote: the retrain flow's start point and its promotion gate."""

from __future__ import annotations

from prefect import get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE
from prefect.events import emit_event
from prefect.runtime import flow_run

from handgesture.checkpoints.best import POINTER, read_best
from handgesture.checkpoints.run_folder import experiment_uri
from handgesture.config import Config
from handgesture.data.prepare import PreparedData
from handgesture.promotion import PromotionDecision, promote
from handgesture.report import promotion_report
from handgesture.storage import open_store, s3_settings
from handgesture.training import RunSummary
from tasks.artifact_keys import artifact_key
from tasks.retry import RETRY_POLICY

# Emitted when a model becomes the experiment's best: automations react to it (docs/deployments.md).
PROMOTED_EVENT = "handgesture.model.promoted"


@task(name="current-best", cache_policy=NO_CACHE, **RETRY_POLICY)
def current_best_task(config: Config) -> dict | None:
    """The experiment's best pointer (checked against its run manifest), or None before a first promotion.

    Read once per retrain: the train task starts from the checkpoint it names, and promote compares with it
    (or, when another promotion moved the pointer meanwhile, with the new best: promotion.contest).
    """
    s3 = s3_settings(config.storage)
    store = open_store(experiment_uri(config.storage.uri, config.storage.experiment), s3)
    pointer = read_best(store, s3)
    if pointer is None:
        # Runs may already be there (make demo's): say how one becomes the model retrains start from.
        get_run_logger().warning(
            "no %s in %s: training from scratch; to fine-tune an existing run instead, promote it first: "
            "handgesture promote %s/<run>/best_model.pth",
            POINTER,
            store.root,
            store.root,
        )
    else:
        get_run_logger().info("fine-tuning from the current best %s", pointer["checkpoint"])
    return pointer


@task(name="promote", cache_policy=NO_CACHE, **RETRY_POLICY)
def promote_task(
    config: Config,
    summary: RunSummary,
    current: dict | None,
    prepared: PreparedData,
    min_improvement: float = 0.0,
) -> PromotionDecision:
    """Evaluate the run's best and the current best on one validation split; promote the better one."""
    decision = promote(
        config,
        summary.best_or_last,
        current,
        prepared=prepared,
        s3=s3_settings(config.storage),
        min_improvement=min_improvement,
        flow_run_id=str(flow_run.id),
    )
    create_markdown_artifact(
        promotion_report(decision),
        key=artifact_key(config.storage.experiment, "promotion"),
        description="promotion decision",
    )
    if decision.promoted:
        emit_event(
            event=PROMOTED_EVENT,
            resource={"prefect.resource.id": f"handgesture.experiment.{config.storage.experiment}"},
            payload={
                "experiment": config.storage.experiment,
                "checkpoint": decision.challenger,
                "score": decision.challenger_metric,
                "metric": decision.metric,
                "test_score": decision.challenger_test_metric,
                "previous": decision.incumbent,
                "pointer": decision.pointer,
            },
        )
    get_run_logger().info("%s: %s", "promoted" if decision.promoted else "kept", decision.reason)
    return decision
