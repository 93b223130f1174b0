"""The subcommands that run a Prefect flow: `train`, and `evaluate --flow`. They import flows/ (and with it
Prefect and torch) only when they run."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from handgesture.evaluation import EvaluationReport
    from handgesture.training import RunSummary


def train(args: argparse.Namespace) -> int:
    run_training(args)
    return 0


def run_training(args: argparse.Namespace) -> RunSummary | None:
    """The training flow run with `handgesture train`'s arguments, its summary printed; None on a node
    without rank 0."""
    from handgesture.config import flow_overrides, load_config
    from handgesture.report import print_summary

    overrides = list(args.overrides)
    if args.model:
        overrides.append(f"model.name={args.model}")
    if args.epochs is not None:
        overrides.append(f"train_params.epochs={args.epochs}")
    # A config mistake is reported before a flow run exists; the flow validates again at its edge.
    load_config(args.config, flow_overrides(overrides, args.storage))
    from flows.train import train_hand_gesture_classifier

    result = train_hand_gesture_classifier(
        config=args.config, overrides=overrides, resume=args.resume, storage=args.storage
    )
    if result is None:
        print("this node's ranks are done; the flow run of the node with rank 0 writes and publishes the run")
    else:
        print_summary(result)
    return result


def evaluate_in_flow(args: argparse.Namespace) -> EvaluationReport:
    from flows.evaluate import evaluate_hand_gesture_classifier

    return evaluate_hand_gesture_classifier(args.uri, args.config, args.overrides, args.split, args.out)
