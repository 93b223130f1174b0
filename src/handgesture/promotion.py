"""Promotion: the experiment's best pointer moves to a challenger only when it scores higher.

Both models are compared on the *same* validation split, measured now: the current best is re-evaluated on
the split the challenger's config defines (the data found at run time, `random_state`,
`dataset.val_fraction`), never trusted for a metric it got on older data. The pointer itself is
`handgesture.checkpoints.best`.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from handgesture.checkpoints.best import POINTER, manifest_sha256, read_best, write_pointer
from handgesture.checkpoints.run_folder import experiment_uri
from handgesture.config import Config
from handgesture.data.loaders import Batches, build_test_batches, build_val_batches
from handgesture.data.prepare import PreparedData, prepare_data
from handgesture.errors import InputError
from handgesture.evaluation import ModelDoesNotFitError, check_fits, score
from handgesture.inference import load_model
from handgesture.metrics import BEST_METRIC
from handgesture.storage import S3Settings, open_store
from handgesture.training.setup import pick_device
from handgesture.training.summary import RunSummary

log = logging.getLogger(__name__)


class PromotionError(InputError):
    """The current best and the challenger cannot be compared on one validation split."""


@dataclass
class PromotionDecision:
    promoted: bool
    reason: str
    metric: str
    challenger: str
    challenger_metric: float
    incumbent: str | None
    incumbent_metric: float | None
    pointer: str  # where the experiment's best pointer lives
    challenger_test_metric: float | None = None  # on the test split, when there is one (not deciding)
    incumbent_test_metric: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class RetrainResult:
    """What a scheduled retrain hands on: the run it trained and the promotion decision."""

    run: RunSummary
    promotion: PromotionDecision


def evaluate_checkpoints(
    config: Config, uris: list[str], splits: dict[str, Batches], s3: S3Settings | None
) -> dict[str, dict[str, float]]:
    """Gesture F1 of each checkpoint on each split (`{"val": ..., "test": ...}`): uri -> split -> F1."""
    device = pick_device(config.device)
    scores = {}
    for uri in uris:
        loaded = load_model(uri, device, s3)
        try:
            check_fits(loaded, config)
        except ModelDoesNotFitError as exc:
            raise PromotionError(f"{exc}: the two models cannot be compared on one split") from None
        scores[uri] = {
            name: float(score(loaded.model, config, device, batches)[BEST_METRIC])
            for name, batches in splits.items()
        }
    return scores


def decide(challenger: float, incumbent: float | None, min_improvement: float = 0.0) -> tuple[bool, str]:
    if incumbent is None:
        return True, "no current best: the first model is promoted"
    if challenger > incumbent + min_improvement:
        return True, f"challenger {challenger:.4f} beats current best {incumbent:.4f} (+{min_improvement})"
    return (
        False,
        f"challenger {challenger:.4f} does not beat current best {incumbent:.4f} (+{min_improvement})",
    )


def promote(
    config: Config,
    challenger: str,
    current: dict[str, Any] | None,
    *,
    prepared: PreparedData | None = None,
    s3: S3Settings | None = None,
    min_improvement: float = 0.0,
    flow_run_id: str | None = None,
) -> PromotionDecision:
    """Compare `challenger` with the `current` best pointer (None: there is none) on the validation split of
    the `prepared` data; move the pointer to the challenger only if it wins."""
    store = open_store(experiment_uri(config.storage.uri, config.storage.experiment), s3)
    incumbent = current["checkpoint"] if current else None
    prepared = prepared or prepare_data(config)
    device = pick_device(config.device)
    splits = {"val": build_val_batches(config, device, prepared)}
    test = build_test_batches(config, device, prepared)
    if test is not None:  # reported beside the decision, never deciding: the test split stays held out
        splits["test"] = test
    scores = evaluate_checkpoints(config, [challenger] + ([incumbent] if incumbent else []), splits, s3)
    incumbent_metric = scores[incumbent]["val"] if incumbent else None
    promoted, reason = decide(scores[challenger]["val"], incumbent_metric, min_improvement)
    if promoted:
        write_pointer(
            store,
            {
                "checkpoint": challenger,
                "sha256": manifest_sha256(challenger, s3),
                "metric": {"name": BEST_METRIC, "value": scores[challenger]["val"]},
                "split": split_of(config),
                "flow_run_id": flow_run_id,
                "previous": incumbent,
                "promoted_at": datetime.now(UTC).isoformat(timespec="seconds"),
            },
        )
    log.info("%s: %s", "promoted" if promoted else "not promoted", reason)
    return PromotionDecision(
        promoted=promoted,
        reason=reason,
        metric=BEST_METRIC,
        challenger=challenger,
        challenger_metric=scores[challenger]["val"],
        incumbent=incumbent,
        incumbent_metric=incumbent_metric,
        pointer=store.uri(POINTER),
        challenger_test_metric=scores[challenger].get("test"),
        incumbent_test_metric=scores[incumbent].get("test") if incumbent else None,
    )


def promote_if_better(config: Config, challenger: str, **options: Any) -> PromotionDecision:
    """`promote` against the experiment's current best, read now."""
    s3 = options.get("s3")
    current = read_best(open_store(experiment_uri(config.storage.uri, config.storage.experiment), s3), s3)
    return promote(config, challenger, current, **options)


def split_of(config: Config) -> dict[str, Any]:
    """What defines the validation split the metric was measured on."""
    ds = config.dataset
    return {
        "annotations": ds.annotations,
        "random_state": config.random_state,
        "val_fraction": ds.val_fraction,
        "subset": ds.subset,
        "image_size": list(ds.image_size),
    }
