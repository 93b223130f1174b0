"""TensorBoard tracking: per-step loss and learning rate, per-epoch metrics, confusion matrices, HParams."""

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

    def epoch(self, epoch: int, metrics: dict[str, Any]) -> None:
        for name, value in metrics.items():
            if isinstance(value, int | float) and "/" in name:
                # The epoch's mean loss gets its own tag: train/loss is the per-step curve.
                tag = "train/epoch_loss" if name == "train/loss" else f"val/{name}"
                self.writer.add_scalar(tag, value, epoch)
        if "confusion_matrix" in metrics:
            figure = confusion_figure(metrics["confusion_matrix"], self.class_names)
            self.writer.add_figure("val/confusion_matrix", figure, epoch, close=True)
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
    axis.set_xticks(range(len(class_names)), class_names, rotation=90, fontsize=7)
    axis.set_yticks(range(len(class_names)), class_names, fontsize=7)
    axis.set_xlabel("predicted")
    axis.set_ylabel("true")
    figure.tight_layout()
    return figure
