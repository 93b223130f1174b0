"""Promotion: the experiment's best pointer moves to a challenger only when it scores higher.

Both models are compared on the *same* validation split, measured now: the current best is re-evaluated on
the split the challenger's config defines (the data found at run time, `random_state`,
`dataset.val_fraction`), never trusted for a metric it got on older data. The pointer itself is
`handgesture.checkpoints.best`.

Promotion is compare-and-swap, not read-then-write: the pointer moves only while it is still the one the
challenger was compared with (a conditional store write). When another promotion moved it first, the
challenger faces the new best, so two retrains never both win and `previous` names the pointer replaced.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from handgesture.checkpoints.best import POINTER, read_best, read_best_versioned, write_pointer_if
from handgesture.checkpoints.run_folder import experiment_uri
from handgesture.config import Config
from handgesture.data.loaders import Batches, build_test_batches, build_val_batches
from handgesture.data.prepare import PreparedData, prepare_data
from handgesture.errors import InputError
from handgesture.evaluation import ModelDoesNotFitError, check_fits, score
from handgesture.inference import load_model
from handgesture.metrics import BEST_METRIC
from handgesture.storage import S3Settings, Store, open_store
from handgesture.training.setup import pick_device
from handgesture.training.summary import RunSummary

log = logging.getLogger(__name__)
# How often a promotion re-decides because others moved the pointer first: each move needs a whole retrain,
# so more than a few in one promotion means something rewrites the pointer in a loop.
MAX_RACES = 5


class PromotionError(InputError):
    """The current best and the challenger cannot be compared on one validation split."""


class PromotionRaceError(RuntimeError):
    """The pointer kept moving under this promotion; a retry decides again (it is no bad input)."""


@dataclass
class Evaluation:
    f1: dict[str, float]  # gesture F1 per split ("val", and "test" when there is one)
    sha256: str  # of the file evaluated: what the pointer records when it wins


Evaluate = Callable[[str], Evaluation]


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
    return {uri: evaluate_checkpoint(config, uri, splits, s3, device).f1 for uri in uris}


def evaluate_checkpoint(
    config: Config, uri: str, splits: dict[str, Batches], s3: S3Settings | None, device: Any
) -> Evaluation:
    loaded = load_model(uri, device, s3)
    try:
        check_fits(loaded, config)
    except ModelDoesNotFitError as exc:
        raise PromotionError(f"{exc}: the two models cannot be compared on one split") from None
    f1 = {
        name: float(score(loaded.model, config, device, batches)[BEST_METRIC])
        for name, batches in splits.items()
    }
    return Evaluation(f1, loaded.sha256)


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
    the `prepared` data; move the pointer to the challenger only if it wins (`contest`)."""
    store = open_store(experiment_uri(config.storage.uri, config.storage.experiment), s3)
    evaluate = evaluator(config, prepared or prepare_data(config), s3)
    record = {"split": split_of(config), "flow_run_id": flow_run_id}
    promoted, reason, incumbent = contest(store, challenger, current, evaluate, min_improvement, record, s3)
    log.info("%s: %s", "promoted" if promoted else "not promoted", reason)
    ours, theirs = evaluate(challenger).f1, evaluate(incumbent).f1 if incumbent else {}
    return PromotionDecision(
        promoted=promoted,
        reason=reason,
        metric=BEST_METRIC,
        challenger=challenger,
        challenger_metric=ours["val"],
        incumbent=incumbent,
        incumbent_metric=theirs.get("val"),
        pointer=store.uri(POINTER),
        challenger_test_metric=ours.get("test"),
        incumbent_test_metric=theirs.get("test"),
    )


def evaluator(config: Config, prepared: PreparedData, s3: S3Settings | None) -> Evaluate:
    """uri -> its Evaluation on the validation split (and the test split, reported, never deciding), each
    checkpoint evaluated once however often a race makes it face another."""
    device = pick_device(config.device)
    splits = {"val": build_val_batches(config, device, prepared)}
    test = build_test_batches(config, device, prepared)
    if test is not None:  # reported beside the decision, never deciding: the test split stays held out
        splits["test"] = test
    done: dict[str, Evaluation] = {}

    def evaluate(uri: str) -> Evaluation:
        if uri not in done:
            done[uri] = evaluate_checkpoint(config, uri, splits, s3, device)
        return done[uri]

    return evaluate


def contest(
    store: Store,
    challenger: str,
    current: dict[str, Any] | None,
    evaluate: Evaluate,
    min_improvement: float,
    record: dict[str, Any],
    s3: S3Settings | None = None,
) -> tuple[bool, str, str | None]:
    """Decide `challenger` against the pointer `current` (as read earlier) and write the experiment's pointer
    only while it is still `current`: (promoted, reason, the incumbent decided against)."""
    incumbent = current
    for _ in range(MAX_RACES):
        won, reason = decide(evaluate(challenger).f1["val"], _val_f1(incumbent, evaluate), min_improvement)
        if not won:
            return False, reason, _checkpoint(incumbent)
        latest, version = read_best_versioned(store, s3)
        if latest != incumbent:  # another promotion moved it since it was read: face the new best
            log.info("%s moved to %s since it was read: deciding again", POINTER, _checkpoint(latest))
            incumbent = latest
            continue
        pointer = {
            "checkpoint": challenger,
            "sha256": evaluate(challenger).sha256,
            "metric": {"name": BEST_METRIC, "value": evaluate(challenger).f1["val"]},
            **record,
            "previous": _checkpoint(incumbent),
            "promoted_at": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        if write_pointer_if(store, pointer, version):
            return True, reason, _checkpoint(incumbent)
        # moved between our read and our write: the next pass reads it again
    raise PromotionRaceError(
        f"{store.uri(POINTER)} moved {MAX_RACES} times while {challenger} was being promoted: giving up"
    )


def _val_f1(pointer: dict[str, Any] | None, evaluate: Evaluate) -> float | None:
    """The current best's validation F1, measured now; its file must be the one that was promoted."""
    if pointer is None:
        return None
    evaluation = evaluate(pointer["checkpoint"])
    if evaluation.sha256 != pointer["sha256"]:
        raise PromotionError(
            f"the current best {pointer['checkpoint']} has sha256 {evaluation.sha256}, but the best pointer "
            f"records {pointer['sha256']}: it is not the file that was promoted"
        )
    return evaluation.f1["val"]


def _checkpoint(pointer: dict[str, Any] | None) -> str | None:
    return pointer["checkpoint"] if pointer else None


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
        "val_annotations": ds.val_annotations,
        "random_state": config.random_state,
        "val_fraction": ds.val_fraction,
        "subset": ds.subset,
        "image_size": list(ds.image_size),
    }
