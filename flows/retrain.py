"""The `retrain-hand-gesture-classifier` flow: fine-tune the experiment's current best on today's data and
promote the new model only if it beats the current best on the same validation split.

load-config -> prepare-data -> current-best -> train (checkpoint.resume_mode=finetune) -> persist -> promote;
the current best is read once, and the prepared data is what training and promotion both read.
Deployed on a daily cron as `scheduled-retrain` (prefect.yaml).
"""

from __future__ import annotations

import flows.settings  # noqa: F401  (this project's Prefect settings: before prefect is imported)

# isort: split

from typing import Annotated

from prefect import flow
from pydantic import Field
from tasks.load_config import load_config_task
from tasks.persist import persist_task
from tasks.prepare import prepare_data_task
from tasks.promote import current_best_task, promote_task
from tasks.results import persist_results_with
from tasks.train import train_task

from flows.run_names import training_run_name
from handgesture.checkpoints.start import best_start
from handgesture.promotion import RetrainResult


@flow(
    name="retrain-hand-gesture-classifier",
    flow_run_name=training_run_name,
    log_prints=True,
    persist_result=True,
)
def retrain_hand_gesture_classifier(
    config: str | None = None,
    overrides: list[str] | None = None,
    storage: str | None = None,
    min_improvement: Annotated[float, Field(ge=0.0, le=1.0)] = 0.0,
) -> RetrainResult | None:
    """Fine-tune the current best on the data found now; promote the result only if it scores higher.

    Returns the run and the promotion decision; None on the nodes of a multi-node data-parallel run other
    than the one holding rank 0, which persists and promotes.

    Args:
        config: Config YAML merged over configs/default.yaml.
        overrides: Dotlist overrides, e.g. ["train_params.epochs=3"].
        storage: Where the experiment lives: a local folder, file://... or s3://bucket/prefix.
        min_improvement: Promote only if validation gesture F1 beats the current best by more than this.
    """
    resolved, _ = load_config_task(config, [*(overrides or []), "checkpoint.resume_mode=finetune"], storage)
    persist_results_with(resolved)
    prepared = prepare_data_task(resolved)
    current = current_best_task(resolved)
    summary = train_task(resolved, prepared, best_start(current) if current else None)
    if summary is None:  # a node of a multi-node run without rank 0
        return None
    summary = persist_task(resolved, summary)
    return RetrainResult(summary, promote_task(resolved, summary, current, prepared, min_improvement))


if __name__ == "__main__":
    retrain_hand_gesture_classifier()
