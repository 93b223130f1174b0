"""The `retrain-hand-gesture-classifier` flow: fine-tune the experiment's current best on today's data and
promote the new model only if it beats the current best on the same validation split.

load-config -> prepare-data -> current-best -> train (checkpoint.resume_mode=finetune) -> persist -> promote;
the current best is read once, and the prepared data is what training and promotion both read.
Deployed on a daily cron as `scheduled-retrain` (prefect.yaml).
"""

from __future__ import annotations

import os

# Library log lines (logging.getLogger("handgesture...")) reach the Prefect UI; must precede prefect's import.
os.environ.setdefault("PREFECT_LOGGING_EXTRA_LOGGERS", "handgesture")
# ... and outside a flow run (run_training in a notebook) they go to the console only, without a warning.
os.environ.setdefault("PREFECT_LOGGING_TO_API_WHEN_MISSING_FLOW", "ignore")

from typing import Annotated  # noqa: E402

from prefect import flow  # noqa: E402
from pydantic import Field  # noqa: E402
from tasks.load_config import load_config_task  # noqa: E402
from tasks.persist import persist_task  # noqa: E402
from tasks.prepare import prepare_data_task  # noqa: E402
from tasks.promote import current_best_task, promote_task  # noqa: E402
from tasks.results import persist_results_with  # noqa: E402
from tasks.train import train_task  # noqa: E402

from flows.run_names import training_run_name  # noqa: E402
from handgesture.checkpoints.start import best_start  # noqa: E402
from handgesture.promotion import RetrainResult  # noqa: E402


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
