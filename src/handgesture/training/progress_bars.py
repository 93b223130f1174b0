"""Console progress bars for a run (tqdm): one for epochs, one for the current epoch's steps."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from tqdm.auto import tqdm

from handgesture.metrics import BEST_METRIC


class ProgressBars:
    """Off unless `enabled`; use as a context manager around the fit."""

    def __init__(self, enabled: bool, epochs: int, start_epoch: int, steps_per_epoch: int):
        self.enabled, self.steps_per_epoch = enabled, steps_per_epoch
        self.epochs = tqdm(total=epochs, initial=start_epoch, desc="epochs", disable=not enabled)

    def wrap(self, train_batches: Callable[[int, int], Iterable[dict]], batch_size: int):
        """`train_batches` with a bar over the rest of each epoch."""

        def batches(epoch: int, position: int) -> Iterable[dict]:
            total = self.steps_per_epoch - position // batch_size
            return tqdm(
                train_batches(epoch, position),
                desc=f"epoch {epoch + 1}",
                leave=False,
                total=total,
                disable=not self.enabled,
            )

        return batches

    def epoch_done(self, metrics: dict[str, Any]) -> None:
        self.epochs.set_postfix(val_f1=f"{metrics[BEST_METRIC]:.3f}", loss=f"{metrics['train/loss']:.3f}")
        self.epochs.update(1)

    def __enter__(self) -> ProgressBars:
        return self

    def __exit__(self, *exc: object) -> None:
        self.epochs.close()
