"""Validation metrics per head through torchmetrics (weighted, as HaGRID's classifier reports them)."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torchmetrics import MetricCollection
from torchmetrics.classification import (
    MulticlassAccuracy,
    MulticlassConfusionMatrix,
    MulticlassF1Score,
    MulticlassPrecision,
    MulticlassRecall,
)

from handgesture.labels import UNKNOWN_HAND

METRIC_NAMES = ("accuracy", "f1_score", "precision", "recall")
_METRICS = {
    "accuracy": MulticlassAccuracy,
    "f1_score": MulticlassF1Score,
    "precision": MulticlassPrecision,
    "recall": MulticlassRecall,
}
HEADS = ("gesture", "leading_hand")
# What "best" means everywhere: best_model.pth, retention's best K, promotion.
BEST_METRIC = "gesture/f1_score"


class HeadMetrics:
    """Accumulates one head's predictions over an evaluation pass; targets of `UNKNOWN_HAND` are left out.

    In a data-parallel run each rank sees its shard; torchmetrics sums the ranks' states when computing, so
    the figures are those of one pass over the whole split."""

    def __init__(self, num_classes: int, device: torch.device, average: str = "weighted", names=METRIC_NAMES):
        kwargs = {"num_classes": num_classes, "average": average, "ignore_index": UNKNOWN_HAND}
        self.scores = MetricCollection({name: _METRICS[name](**kwargs) for name in names}).to(device)
        self.matrix = MulticlassConfusionMatrix(num_classes=num_classes, ignore_index=UNKNOWN_HAND).to(device)

    def update(self, logits: torch.Tensor, target: torch.Tensor) -> None:
        predictions = logits.argmax(dim=1)
        self.scores.update(predictions, target)
        self.matrix.update(predictions, target)

    def compute(self) -> dict[str, float]:
        """The scores; empty when no target counted (HaGRID v2 data has no leading hand)."""
        if not self.matrix.compute().sum().item():  # the targets that count, on every rank
            return {}
        return {name: float(value) for name, value in self.scores.compute().items()}

    def confusion(self) -> list[list[int]]:
        return self.matrix.compute().cpu().tolist()


def f1_score(predicted: torch.Tensor, targets: torch.Tensor, num_classes: int, average: str) -> float:
    """The F1 of predicted class indices, as `HeadMetrics` scores a head (the same metric, average and
    ignored target): an evaluation's per-group scores are comparable with its overall one."""
    metric = _METRICS["f1_score"](num_classes=num_classes, average=average, ignore_index=UNKNOWN_HAND)
    return float(metric(predicted, targets))


def scalars(metrics: dict[str, Any]) -> dict[str, float]:
    """The plain numbers of a metrics dict (no confusion matrix), as floats."""
    return {k: float(v) for k, v in metrics.items() if isinstance(v, int | float)}


def head_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy over the targets that are known; 0 when none is (no device sync either way)."""
    total = F.cross_entropy(logits, target, ignore_index=UNKNOWN_HAND, reduction="sum")
    return total / (target != UNKNOWN_HAND).sum().clamp(min=1)
