"""TensorBoard tracking: per-step loss and learning rate, per-epoch metrics, confusion matrices, HParams.

Every curve's x is the global step, so training and validation curves line up; the validation metrics also
have epoch-indexed copies (`epoch/...`)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # no display on training machines
import matplotlib.pyplot as plt  # noqa: E402
from torch.utils.tensorboard import SummaryWriter  # noqa: E402

log = logging.getLogger(__name__)


class Tracker:
    """Writes one run's event files; `close()` must be called (the caller does it in `finally`)."""

    def __init__(self, log_dir: Path, class_names: list[str], every_n_steps: int = 10):
        self.log_dir = log_dir
        self.class_names = class_names
        self.every_n_steps = max(1, every_n_steps)
        self.writer = SummaryWriter(log_dir=str(log_dir))

    def step(self, global_step: int, values: dict[str, float]) -> None:
        if global_step % self.every_n_steps == 0:
            self.writer.add_scalar("train/loss", values["loss"], global_step)
            self.writer.add_scalar("train/lr", values["lr"], global_step)

    def epoch(self, global_step: int, epoch: int, metrics: dict[str, Any]) -> None:
        for name, value in metrics.items():
            if isinstance(value, int | float) and "/" in name:
                # The epoch's mean loss gets its own tag: train/loss is the per-step curve.
                tag = "train/epoch_loss" if name == "train/loss" else f"val/{name}"
                self.writer.add_scalar(tag, value, global_step)
                self.writer.add_scalar(f"epoch/{tag}", value, epoch)
        if "confusion_matrix" in metrics:
            figure = confusion_figure(metrics["confusion_matrix"], self.class_names)
            self.writer.add_figure("val/confusion_matrix", figure, global_step, close=True)
        self.writer.flush()

    def test(self, global_step: int, metrics: dict[str, float]) -> None:
        """The test split's metrics (`test/...`), once, at the run's last step."""
        for name, value in metrics.items():
            if name.startswith("test/") and name != "test/skipped_images":
                self.writer.add_scalar(name, value, global_step)
        self.writer.flush()

    def hparams(self, hparams: dict[str, Any], best: dict[str, float]) -> None:
        """One HParams record per run, so runs can be compared side by side in one TensorBoard."""
        flat = {k: v if isinstance(v, int | float | str | bool) else str(v) for k, v in hparams.items()}
        self.writer.add_hparams(flat, {f"hparam/{k}": v for k, v in best.items()}, run_name=".")
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()


def confusion_figure(matrix: list[list[int]], class_names: list[str]):
    size = max(4.0, 0.45 * len(class_names))
    figure, axis = plt.subplots(figsize=(size, size))
    axis.imshow(matrix, cmap="Blues")
    peak = max((max(row) for row in matrix), default=0)
    for row, counts in enumerate(matrix):  # the counts themselves, readable on light and dark cells
        for column, count in enumerate(counts):
            if count:
                colour = "white" if count > peak / 2 else "black"
                axis.text(column, row, str(count), ha="center", va="center", fontsize=6, color=colour)
    axis.set_xticks(range(len(class_names)), class_names, rotation=90, fontsize=7)
    axis.set_yticks(range(len(class_names)), class_names, fontsize=7)
    axis.set_xlabel("predicted")
    axis.set_ylabel("true")
    figure.tight_layout()
    return figure
