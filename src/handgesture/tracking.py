"""TensorBoard tracking: per-step loss and learning rate, per-epoch metrics, confusion matrices, HParams.

Every curve's x is the global step, so training and validation curves line up; the validation metrics also
have epoch-indexed copies (`epoch/...`)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from torch.utils.tensorboard import SummaryWriter

from handgesture.figures import confusion_figure

log = logging.getLogger(__name__)


class Tracker:
    """Writes one run's event files; `close()` must be called (the caller does it in `finally`)."""

    def __init__(self, log_dir: Path, class_names: list[str]):
        self.log_dir = log_dir
        self.class_names = class_names
        self.writer = SummaryWriter(log_dir=str(log_dir))

    def step(self, global_step: int, values: dict[str, float]) -> None:
        """The training loss (the mean since the last point) and learning rate, every log_every_n_steps."""
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
