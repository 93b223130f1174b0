"""The `train-hand-gesture-classifier` flow: load-config -> prepare-data -> train -> persist.

Run it like the tutorial's flow (the same as `handgesture train ...`):
    python flows/train.py --model ResNet18 --epochs 1 --resume runs/.../best_model.pth [key=value ...]
"""

from __future__ import annotations

import flows.settings  # noqa: F401  (this project's Prefect settings: before prefect is imported)

# isort: split

import sys

from prefect import flow
from tasks.load_config import load_config_task
from tasks.persist import persist_task
from tasks.results import persist_results_with
from tasks.train import train_task

from flows.prepare import prepare_step
from flows.run_names import training_run_name
from handgesture.training import RunSummary


@flow(
    name="train-hand-gesture-classifier",
    flow_run_name=training_run_name,
    log_prints=True,
    persist_result=True,
)
def train_hand_gesture_classifier(
    config: str | None = None,
    overrides: list[str] | None = None,
    resume: str | None = None,
    storage: str | None = None,
) -> RunSummary | None:
    """Train a HaGRID hand-gesture classifier, checkpointing full training state as it goes.

    Returns the run's summary; None on the nodes of a multi-node data-parallel run other than node 0, whose
    flow run trains rank 0 and publishes the run.

    Args:
        config: Config YAML merged over configs/default.yaml. A resume continues its checkpoint's recipe
            (model, data, optimizer, schedule); storage, devices and caches still come from this file.
        overrides: Dotlist overrides, e.g. ["train_params.epochs=3", "model.name=ResNet18"]; applied on top of
            a resumed checkpoint's config too.
        resume: Where to continue from: a checkpoint (local path, file://..., s3://bucket/.../x.pth); a run
            folder or s3:// run prefix (its newest committed checkpoint); prefect://flow-runs/<id> (that
            flow run's last checkpoint, /best for its best); <storage>/<experiment>/best (the experiment's
            current best). Empty: start fresh.
        storage: Where runs go: a local folder, file://... or s3://bucket/prefix.
    """
    resolved, start = load_config_task(config, overrides, storage, resume)  # the resume, resolved once
    persist_results_with(resolved)
    prepared = prepare_step(resolved)  # with prepare.dask: in shards on a Dask cluster
    summary = train_task(resolved, prepared, start)
    if summary is None:  # a node of a multi-node run without rank 0
        return None
    return persist_task(resolved, summary)


if __name__ == "__main__":  # the tutorial's habit: `python flows/train.py ...` is `handgesture train ...`
    from handgesture_cli.main import main

    raise SystemExit(main(["train", *sys.argv[1:]]))
