"""HaGRID v2's early-stopping rule as a pure function, and the state it keeps between epochs.

The state (the best metric and its epoch, and whether the rule has stopped the run) is part of every
checkpoint (`TrainingState`), so a resumed run decides as the straight run would have.
"""

from __future__ import annotations

from dataclasses import dataclass, replace


@dataclass(frozen=True)
class StopRule:
    """`train_params.early_stopping`: patience in epochs (0: never stop) and the least improvement."""

    epochs: int = 0
    delta: float = 0.0


@dataclass(frozen=True)
class StopState:
    best: float = -1.0  # the best validation metric by the rule (a gain of more than delta)
    best_epoch: int = 0  # the completed epochs when it was reached (0: before training)
    stopped_epoch: int = 0  # the completed epochs when the rule stopped the run (0: it has not)
    stopped_under: int = 0  # that run's train_params.epochs: a resume with more epochs goes on


def early_stop(state: StopState, rule: StopRule, epoch: int, metric: float) -> tuple[StopState, bool]:
    """The state after `epoch` (completed epochs) scored `metric`, and whether training stops there.

    v2's rule: an epoch is the new best only when it beats the best by more than `delta`; training stops
    when the epochs since the best reach `epochs` and this epoch did not beat the best by more than `delta`.
    """
    improved = metric - state.best > rule.delta
    if improved:
        state = replace(state, best=metric, best_epoch=epoch)
    stop = rule.epochs > 0 and not improved and epoch - state.best_epoch >= rule.epochs
    return state, stop


def stop_reason(state: StopState, rule: StopRule) -> str | None:
    """Why the rule stopped the run, as a user reads it; None when it has not."""
    if not state.stopped_epoch:
        return None
    return (
        f"stopped early after epoch {state.stopped_epoch}: validation gesture F1 has not beaten its best "
        f"({state.best:.4f}, epoch {state.best_epoch}) by more than {rule.delta:g} for "
        f"{state.stopped_epoch - state.best_epoch} epochs (train_params.early_stopping.epochs={rule.epochs})"
    )
