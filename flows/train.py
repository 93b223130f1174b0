"""The `train-hand-gesture-classifier` flow: load-config -> prepare-data -> train -> persist.

Run it like the tutorial's flow:
    python flows/train.py --model ResNet18 --epochs 1 --resume runs/.../best_model.pth [key=value ...]
"""

from __future__ import annotations

import argparse
import os
import sys

# Library log lines (logging.getLogger("handgesture...")) reach the Prefect UI; must precede prefect's import.
os.environ.setdefault("PREFECT_LOGGING_EXTRA_LOGGERS", "handgesture")
# ... and outside a flow run (run_training in a notebook) they go to the console only, without a warning.
os.environ.setdefault("PREFECT_LOGGING_TO_API_WHEN_MISSING_FLOW", "ignore")

from prefect import flow  # noqa: E402
from tasks.load_config import load_config_task  # noqa: E402
from tasks.persist import persist_task  # noqa: E402
from tasks.prepare import prepare_data_task  # noqa: E402
from tasks.results import persist_results_with  # noqa: E402
from tasks.train import train_task  # noqa: E402

from flows.run_names import training_run_name  # noqa: E402
from handgesture.training import RunSummary  # noqa: E402

RESUME_HELP = (
    "Where to continue from: a checkpoint (local path, file://..., s3://bucket/.../x.pth); a run folder or "
    "s3:// run prefix (its newest committed checkpoint); prefect://flow-runs/<id> (that flow run's last "
    "checkpoint; add /best for its best); <storage>/<experiment>/best (the experiment's current best model, "
    "as promoted by the scheduled retrain). Empty: start fresh."
)


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
        config: Config YAML merged over configs/default.yaml (not read when resuming: a resume continues
            its checkpoint's own config).
        overrides: Dotlist overrides, e.g. ["train_params.epochs=3", "model.name=ResNet18"]; applied on top of
            a resumed checkpoint's config too.
        resume: Where to continue from: a checkpoint (local path, file://..., s3://bucket/.../x.pth); a run
            folder or s3:// run prefix (its newest committed checkpoint); prefect://flow-runs/<id> (that
            flow run's last checkpoint, /best for its best); <storage>/<experiment>/best (the experiment's
            current best). Empty: start fresh.
        storage: Where runs go: a local folder, file://... or s3://bucket/prefix.
    """
    resolved = load_config_task(config, overrides, storage, resume)
    persist_results_with(resolved)
    prepared = prepare_data_task(resolved)
    summary = train_task(resolved, prepared, resume or None)
    if summary is None:  # a node of a multi-node run without rank 0
        return None
    return persist_task(resolved, summary)


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", help="config YAML merged over configs/default.yaml")
    parser.add_argument("--model", help="architecture, e.g. ResNet18 (model.name)")
    parser.add_argument("--epochs", type=int, help="total epochs to reach (train_params.epochs)")
    parser.add_argument("--resume", help=RESUME_HELP)
    parser.add_argument("--storage", help="local folder, file://... or s3://bucket/prefix (storage.uri)")
    parser.add_argument("overrides", nargs="*", metavar="key=value", help="dotlist config overrides")
    return parser.parse_intermixed_args(argv)  # key=value overrides may come before, between or after options


def main(argv: list[str] | None = None) -> RunSummary | None:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    overrides = list(args.overrides)
    if args.model:
        overrides.append(f"model.name={args.model}")
    if args.epochs is not None:
        overrides.append(f"train_params.epochs={args.epochs}")
    from handgesture.cli import report_error
    from handgesture.config import flow_overrides
    from handgesture.errors import InputError, StorageError
    from handgesture.report import print_summary
    from handgesture.training.resume import run_config

    try:
        # A config mistake is reported before a flow run exists; the flow validates again at its edge.
        run_config(args.config, flow_overrides(overrides, args.storage), args.resume)
        result = train_hand_gesture_classifier(
            config=args.config, overrides=overrides, resume=args.resume, storage=args.storage
        )
    except (InputError, StorageError) as exc:
        # One clear line (Prefect has already logged any details): exit 2 for bad input, else 1.
        raise SystemExit(report_error(exc)) from None

    if result is None:
        print("this node's ranks are done; the flow run of the node with rank 0 writes and publishes the run")
    else:
        print_summary(result)
    return result


if __name__ == "__main__":
    main()
