"""HaGRID v2's training snapshots, both ways (hukenovs/hagrid, custom_utils/train_utils.py).

A v2 snapshot is `{MODEL_STATE, OPTIMIZER_STATE, SCHEDULER_STATE, EPOCHS_RUN, Loss, Metric}`. Its
MODEL_STATE is v2's `ClassifierModel.state_dict()` on one GPU (`hagrid_model.<torchvision key>`) or the bare
network's with several (`<torchvision key>`); VitB16 adds one more `hagrid_model.` of its own. Both forms
are read; the single-GPU form is written, since that is what v2's single-GPU trainer loads strictly.

Reading (`from_v2_snapshot`): the architecture and class count come from the weights, the classes are v2's
34 targets (or its 33 gestures: v2's README drops no_gesture for full-frame models), the next epoch is
`EPOCHS_RUN + 1` (v2 would train epoch EPOCHS_RUN again), the best metric is `Metric["F1Score"]`.
Writing (`v2_snapshot_keys`): the same tensor and optimizer objects under v2's names, so a file stores them
once.
"""

from __future__ import annotations

import logging
import numbers
from typing import Any

import torch

from handgesture.checkpoints.format import SCHEMA_VERSION, UNKNOWN_STEP
from handgesture.errors import CheckpointError
from handgesture.full_frame import WRAPPER, v2_model_state
from handgesture.labels import HAGRID_V2_TARGETS, NO_GESTURE
from handgesture.metrics import BEST_METRIC
from handgesture.models import FULL_FRAME_ARCHITECTURES, Layout, describe_keys, detect_layout

log = logging.getLogger(__name__)
ORIGIN = "hagrid_v2"
SNAPSHOT_KEYS = ("MODEL_STATE", "OPTIMIZER_STATE", "SCHEDULER_STATE", "EPOCHS_RUN", "Loss", "Metric")
V2_METRIC = "F1Score"  # the metric v2's classifier trainer keeps its best by
# What tells v2's ReduceLROnPlateau state from its StepLR / CosineAnnealingLR ones.
_PLATEAU_KEYS = frozenset({"mode", "factor", "patience", "num_bad_epochs", "best"})


def is_v2_snapshot(checkpoint: dict[str, Any]) -> bool:
    """A dict as v2's trainer saves it: MODEL_STATE and no schema of ours (ours carry both)."""
    return "MODEL_STATE" in checkpoint and "schema_version" not in checkpoint


def from_v2_snapshot(checkpoint: dict[str, Any], source: str) -> dict[str, Any]:
    """`checkpoint` (a v2 snapshot) in our current schema."""
    state, layout = _model_state(checkpoint.get("MODEL_STATE"), source)
    epoch = _epochs_run(checkpoint, source) + 1
    best = _best_metric(checkpoint, source)
    upgraded = {
        "schema_version": SCHEMA_VERSION,
        "origin": ORIGIN,
        "state_dict": state,
        "epoch": epoch,
        # v2 counts epochs only: the step count is this run's steps per epoch x epochs (restore).
        "progress": {"epoch": epoch, "global_step": UNKNOWN_STEP, "best_metric": best, "best_epoch": epoch},
        "metrics": {BEST_METRIC: best, "train/loss": _number(checkpoint.get("Loss"), "Loss", source)},
        "config": {},
        "model_name": layout.name,
        "class_names": _class_names(layout, source),
        "image_size": [layout.image_size, layout.image_size],
        "full_frame": True,
    }
    if checkpoint.get("OPTIMIZER_STATE") is not None:
        upgraded["optimizer_state_dict"] = checkpoint["OPTIMIZER_STATE"]
    scheduler = checkpoint.get("SCHEDULER_STATE")
    if isinstance(scheduler, dict) and scheduler.keys() >= _PLATEAU_KEYS:
        upgraded["plateau_state_dict"] = scheduler  # where v2's plateau stands: ours continues from it
    elif scheduler is not None:
        # v2 steps a StepLR or cosine once per epoch; its effect is in the optimizer's learning rates,
        # which the run continues from (`TrainingState.restore_scheduler`), its form is this run's config's.
        log.info(
            "%s: its %s scheduler state is not loaded; the run continues at its rates",
            source,
            _kind(scheduler),
        )
    return upgraded


def _model_state(model_state: Any, source: str) -> tuple[dict[str, torch.Tensor], Layout]:
    """The state_dict in our saved form (torchvision's keys; VitB16's own wrapper kept), and its layout."""
    if not isinstance(model_state, dict) or not model_state:
        raise CheckpointError(
            f"{source}: its MODEL_STATE is {type(model_state).__name__}: expected a state_dict"
        )
    bare = {key.removeprefix(WRAPPER): tensor for key, tensor in model_state.items()}
    single_gpu = all(key.startswith(WRAPPER) for key in model_state)
    # Try the single-GPU form's stripped keys first; VitB16's data-parallel form is already ours as it is.
    for state in (bare, model_state) if single_gpu else (model_state,):
        layout = detect_layout(state)
        if layout is not None and layout.full_frame:
            return state, layout
        if layout is not None:
            raise CheckpointError(
                f"{source}: its MODEL_STATE holds HaGRID v1's hand-crop {layout.name} layout: expected a v2 "
                "full-frame classifier (a v1 checkpoint keeps its weights under 'state_dict')"
            )
    raise CheckpointError(
        f"{source}: its MODEL_STATE holds {describe_keys(model_state)}, which is no layout we know: expected "
        f"HaGRID v2's full-frame classifier ({', '.join(FULL_FRAME_ARCHITECTURES)}) in torchvision's keys, "
        "with or without v2's 'hagrid_model.' prefix"
    )


def _epochs_run(checkpoint: dict[str, Any], source: str) -> int:
    value = checkpoint.get("EPOCHS_RUN")
    if isinstance(value, torch.Tensor) and value.numel() == 1 and not value.is_floating_point():
        value = int(value.item())
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise CheckpointError(
            f"{source}: its EPOCHS_RUN is {value!r}: expected the 0-based index of the last trained epoch, "
            "an int of at least 0"
        )
    return value


def _best_metric(checkpoint: dict[str, Any], source: str) -> float:
    metric = checkpoint.get("Metric")
    if not isinstance(metric, dict) or V2_METRIC not in metric:
        raise CheckpointError(f"{source}: its Metric is {metric!r}: expected a dict with {V2_METRIC!r}")
    return _number(metric[V2_METRIC], f"Metric[{V2_METRIC!r}]", source)


def _number(value: Any, key: str, source: str) -> float:
    """A float from a number or a one-element tensor (v2 keeps torchmetrics' outputs as they come)."""
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        return float(value.item())
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        return float(value)
    raise CheckpointError(f"{source}: its {key} is {value!r}: expected a number (or a one-element tensor)")


def _class_names(layout: Layout, source: str) -> list[str]:
    """v2 snapshots name no classes: only v2's own label spaces can be told from the count."""
    if layout.num_classes == len(HAGRID_V2_TARGETS):
        return list(HAGRID_V2_TARGETS)
    if layout.num_classes == len(HAGRID_V2_TARGETS) - 1:  # v2's README: full frame without no_gesture
        return [target for target in HAGRID_V2_TARGETS if target != NO_GESTURE]
    raise CheckpointError(
        f"{source}: its {layout.name} head has {layout.num_classes} classes, and a HaGRID v2 snapshot names "
        f"none: expected {len(HAGRID_V2_TARGETS)} (v2's targets) or {len(HAGRID_V2_TARGETS) - 1} (without "
        f"{NO_GESTURE}); fine-tune a model of your classes from it in a run of ours instead"
    )


def _kind(scheduler: Any) -> str:
    return "StepLR" if isinstance(scheduler, dict) and "step_size" in scheduler else "non-plateau"


def v2_snapshot_keys(
    state_dict: dict[str, torch.Tensor],
    optimizer_state: dict[str, Any],
    scheduler_state: dict[str, Any] | None,
    epoch: int,
    progress: dict[str, Any],
) -> dict[str, Any]:
    """v2's snapshot keys for one of our full-frame checkpoints: the same tensors and optimizer state
    (never copies: torch.save stores each storage once), so v2's trainer continues it.

    `epoch` counts our finished epochs; v2's EPOCHS_RUN is the last one's 0-based index."""
    return {
        "MODEL_STATE": v2_model_state(state_dict),
        "OPTIMIZER_STATE": optimizer_state,
        "SCHEDULER_STATE": scheduler_state,
        "EPOCHS_RUN": max(epoch - 1, 0),  # before the first epoch ends there is none: v2 starts at 0 then
        "Loss": _best_loss(progress),
        # v2 starts its best at 0 and saves a snapshot only above it: never hand it our "no best yet" of -1.
        "Metric": {V2_METRIC: max(float(progress.get("best_metric", 0.0)), 0.0)},
    }


def _best_loss(progress: dict[str, Any]) -> float:
    """The training loss of the best epoch, which v2's best_state pairs with its metric (0.0 when none)."""
    rows = [row for row in progress.get("history", []) if row.get("epoch") == progress.get("best_epoch")]
    return float(rows[-1].get("train/loss", 0.0)) if rows else 0.0


def v2_scheduler_state(
    config: dict[str, Any], plateau_state: dict[str, Any] | None, lrs: list[float], epoch: int
) -> dict[str, Any] | None:
    """What v2's scheduler of our schedule's name loads (`load_state_dict` takes the dict as its own
    attributes), stepped per epoch as v2 steps it; None without a schedule, as v2 saves it without one.

    `config`: our run's config as a dict; `lrs`: the optimizer's current rates; `epoch`: epochs done."""
    sched = config["scheduler"]
    schedule = "CosineAnnealingLR" if sched.get("cosine") and sched["name"] == "none" else sched["name"]
    if schedule == "ReduceLROnPlateau":
        return plateau_state  # torch's own state: v2's ReduceLROnPlateau is the same class
    position = {"base_lrs": list(lrs), "last_epoch": epoch, "_step_count": epoch + 1, "_last_lr": list(lrs)}
    position["_get_lr_called_within_step"] = False
    if schedule == "StepLR":  # v2 steps per epoch: step_size in epochs, as our config gives it
        step_size, gamma = int(sched["step_size"]), float(sched["gamma"])
        # The rates have decayed already: the base from which the epochs' decays lead to them.
        return {
            **position,
            "base_lrs": [lr / gamma ** (epoch // step_size) for lr in lrs],
            "step_size": step_size,
            "gamma": gamma,
        }
    if schedule == "CosineAnnealingLR":
        # v2 steps torch's recursive cosine form, which continues from the current rates to 0 at T_max.
        return {**position, "T_max": int(config["train_params"]["epochs"]), "eta_min": 0.0}
    return None
