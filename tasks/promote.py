"""current-best and promote: the retrain flow's start point and its promotion gate."""

from __future__ import annotations

from prefect import get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE
from prefect.runtime import flow_run

from handgesture.config import from_dict
from handgesture.promotion import POINTER, best_ref, experiment_uri, promote_if_better, read_pointer
from handgesture.restore import s3_settings
from handgesture.storage import open_store
from tasks.artifact_keys import artifact_key
from tasks.retry import retry_unless_bad_input


@task(name="current-best", cache_policy=NO_CACHE, retries=2, retry_delay_seconds=[5, 30])
def current_best_task(config: dict) -> str | None:
    """The resume reference of the experiment's current best, or None when none was promoted yet."""
    cfg = from_dict(config)
    store = open_store(experiment_uri(cfg.storage.uri, cfg.storage.experiment), s3_settings(cfg))
    pointer = read_pointer(store)
    if pointer is None:
        get_run_logger().info("no %s in %s: training from scratch", POINTER, store.root)
        return None
    get_run_logger().info("fine-tuning from the current best %s", pointer["checkpoint"])
    return best_ref(cfg.storage.uri, cfg.storage.experiment)


@task(
    name="promote",
    cache_policy=NO_CACHE,
    retries=2,
    retry_delay_seconds=[5, 30],
    retry_condition_fn=retry_unless_bad_input,
)
def promote_task(config: dict, result: dict, min_improvement: float = 0.0) -> dict:
    """Evaluate the run's best and the current best on one validation split; promote the better one."""
    cfg = from_dict(config)
    decision = promote_if_better(
        cfg,
        result["best_checkpoint"] or result["last_checkpoint"],
        s3=s3_settings(cfg),
        min_improvement=min_improvement,
        flow_run_id=str(flow_run.id),
    )
    incumbent = decision["incumbent_metric"]
    create_markdown_artifact(
        f"## {'Promoted' if decision['promoted'] else 'Not promoted'}\n\n{decision['reason']}\n\n"
        f"| model | {decision['metric']} (same validation split) |\n| --- | --- |\n"
        f"| challenger `{decision['challenger']}` | {decision['challenger_metric']:.4f} |\n"
        f"| current best `{decision['incumbent']}` | "
        f"{'-' if incumbent is None else f'{incumbent:.4f}'} |\n\npointer: `{decision['pointer']}`\n",
        key=artifact_key(cfg.storage.experiment, "promotion"),
        description="promotion decision",
    )
    get_run_logger().info("%s: %s", "promoted" if decision["promoted"] else "kept", decision["reason"])
    return decision
