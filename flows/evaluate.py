"""The `evaluate-hand-gesture-classifier` flow: a checkpoint's metrics on a held-out split, as artifacts.

    python flows/evaluate.py runs/demo/<run>/best_model.pth [--split val] [--config ...] [key=value ...]

The same evaluation as `handgesture evaluate` (and as training's and promotion's), in a flow run: the report
and the per-class table become artifacts, and `prefect deployment run evaluate-hand-gesture-classifier/
evaluate -p checkpoint=...` runs it on a worker.
"""

from __future__ import annotations

import flows.settings  # noqa: F401  (this project's Prefect settings: before prefect is imported)

# isort: split

import sys

from prefect import flow
from tasks.evaluate import evaluate_task

from handgesture.evaluation import EvaluationReport


@flow(name="evaluate-hand-gesture-classifier", log_prints=True)
def evaluate_hand_gesture_classifier(
    checkpoint: str,
    config: str | None = None,
    overrides: list[str] | None = None,
    split: str | None = None,
    out: str | None = None,
) -> EvaluationReport:
    """Evaluate a checkpoint on a held-out split: per-class and weighted metrics of both heads, confusion
    matrices, the most confident mistakes.

    Args:
        checkpoint: A checkpoint or run folder: path, file://, s3://, <storage>/<experiment>/best or
            prefect://flow-runs/<id>.
        config: Config YAML of the data (default: the config the checkpoint was trained with).
        overrides: Dotlist overrides, e.g. ["dataset.test_annotations=data/hagrid/test"].
        split: "test" or "val" (default: test when the config has a test split, else val).
        out: Folder for report.json and the PNGs (default: evaluations/<model>-e<epoch>-<sha>-<split>).
    """
    return evaluate_task(checkpoint, config, overrides or [], split, out)


if __name__ == "__main__":  # `python flows/evaluate.py ...` is `handgesture evaluate --flow ...`
    from handgesture_cli.main import main

    raise SystemExit(main(["evaluate", "--flow", *sys.argv[1:]]))
