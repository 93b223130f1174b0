"""The experiment's best model: a stable pointer, and promotion to it only when a challenger scores higher.

The pointer is `<storage>/<experiment>/best.json`: the checkpoint URI, its sha256 (from the run manifest),
the metric and the validation split it was measured on. `resume` follows it from the form
`<storage>/<experiment>/best` (so a run can never be named `best`).

Both models are compared on the *same* validation split, measured now: the current best is re-evaluated
on the split the challenger's config defines (the data found at run time, `random_state`,
`dataset.val_fraction`), never trusted for a metric it got on older data. Writing the pointer is one
atomic store write (local: temp + fsync + rename; S3: one PUT), so readers see the old pointer or the new
one, never a torn one.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from handgesture.checkpoint import CheckpointError
from handgesture.config import Config
from handgesture.runs import BEST, read_manifest
from handgesture.storage import S3Settings, Store, open_store

log = logging.getLogger(__name__)
POINTER = "best.json"
BEST_REF = "best"
METRIC = "gesture/f1_score"


class PromotionError(ValueError):
    """The current best and the challenger cannot be compared on one validation split."""


def experiment_uri(storage_uri: str, experiment: str) -> str:
    base = storage_uri.rstrip("/")
    if "://" not in base:
        base = str(Path(base).expanduser().resolve())
    return f"{base}/{experiment}"


def best_ref(storage_uri: str, experiment: str) -> str:
    """The resume form meaning "this experiment's current best": `<storage>/<experiment>/best`."""
    return f"{experiment_uri(storage_uri, experiment)}/{BEST_REF}"


def is_best_ref(uri: str) -> bool:
    return uri.rstrip("/").rpartition("/")[2] == BEST_REF


def read_pointer(store: Store) -> dict[str, Any] | None:
    if not store.exists(POINTER):
        return None
    try:
        pointer = json.loads(store.get_bytes(POINTER))
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"best pointer {store.uri(POINTER)} is not valid JSON: {exc}") from None
    if not isinstance(pointer, dict) or not isinstance(pointer.get("checkpoint"), str):
        raise CheckpointError(f"best pointer {store.uri(POINTER)} has no 'checkpoint' URI")
    return pointer


def write_pointer(store: Store, pointer: dict[str, Any]) -> None:
    store.put_bytes(json.dumps(pointer, indent=2).encode(), POINTER)


def follow_best_ref(uri: str, s3: S3Settings | None = None) -> str:
    """`<storage>/<experiment>/best` -> the checkpoint URI its pointer names, checked against its manifest."""
    experiment = uri.rstrip("/").rpartition("/")[0]
    pointer = read_pointer(open_store(experiment, s3))
    if pointer is None:
        raise CheckpointError(
            f"resume {uri}: no best model has been promoted in {experiment} yet (expected "
            f"{experiment}/{POINTER}; a scheduled retrain writes it)"
        )
    recorded = manifest_sha256(pointer["checkpoint"], s3)
    if pointer.get("sha256") and recorded and recorded != pointer["sha256"]:
        raise CheckpointError(
            f"resume {uri}: the best pointer names {pointer['checkpoint']} with sha256 {pointer['sha256']}, "
            f"but its run manifest now records {recorded}"
        )
    return pointer["checkpoint"]


def manifest_sha256(checkpoint_uri: str, s3: S3Settings | None = None) -> str | None:
    from handgesture.resolve import split_checkpoint_uri

    run_uri, key = split_checkpoint_uri(checkpoint_uri)
    manifest = read_manifest(open_store(run_uri, s3))
    if manifest is None:
        return None
    entry = manifest.get("best") if key == BEST else None
    entry = entry or next((e for e in manifest["checkpoints"] if e["key"] == key), None)
    return entry["sha256"] if entry else None


def evaluate_checkpoints(config: Config, uris: list[str], s3: S3Settings | None = None) -> dict[str, float]:
    """Validation gesture F1 of each checkpoint on the one split `config` defines (data read now)."""
    from handgesture.assemble import build_data, pick_device
    from handgesture.engine import Trainer, evaluate
    from handgesture.inference import load_model

    device = pick_device(config.device)
    data = build_data(config, device)
    scores = {}
    for uri in uris:
        loaded = load_model(uri, device, s3)
        for what, theirs, ours in (
            ("classes", loaded.class_names, list(config.dataset.targets)),
            ("image size", loaded.image_size, list(config.dataset.image_size)),
        ):
            if list(theirs) != ours:
                raise PromotionError(
                    f"{uri} was trained for {what} {theirs}, but the validation split uses {ours}: "
                    "the two models cannot be compared on one split"
                )
        trainer = Trainer(loaded.model, None, None, None, device, len(config.dataset.targets))  # type: ignore[arg-type]
        trainer.metric_average = config.metric_params.average
        scores[uri] = float(evaluate(trainer, data.val_batches())[METRIC])
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


def promote_if_better(
    config: Config,
    challenger: str,
    *,
    s3: S3Settings | None = None,
    min_improvement: float = 0.0,
    flow_run_id: str | None = None,
) -> dict[str, Any]:
    """Compare `challenger` with the current best on one split; move the pointer to it only if it wins."""
    store = open_store(experiment_uri(config.storage.uri, config.storage.experiment), s3)
    current = read_pointer(store)
    uris = [challenger] + ([current["checkpoint"]] if current else [])
    scores = evaluate_checkpoints(config, uris, s3)
    incumbent = scores[current["checkpoint"]] if current else None
    promoted, reason = decide(scores[challenger], incumbent, min_improvement)
    decision = {
        "promoted": promoted,
        "reason": reason,
        "metric": METRIC,
        "challenger": challenger,
        "challenger_metric": scores[challenger],
        "incumbent": current["checkpoint"] if current else None,
        "incumbent_metric": incumbent,
        "pointer": store.uri(POINTER),
    }
    if promoted:
        write_pointer(
            store,
            {
                "checkpoint": challenger,
                "sha256": manifest_sha256(challenger, s3),
                "metric": {"name": METRIC, "value": scores[challenger]},
                "split": split_of(config),
                "flow_run_id": flow_run_id,
                "previous": current["checkpoint"] if current else None,
                "promoted_at": datetime.now(UTC).isoformat(timespec="seconds"),
            },
        )
    log.info("%s: %s", "promoted" if promoted else "not promoted", reason)
    return decision


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
