"""Fair evaluation: the gesture head's F1 per group of gender, race and age band, each group's count, and
the widest gap between groups, where the evaluated annotations carry HaGRID v2's `meta`.

Which group a sample is in is `data.people`'s rule (one person in the frame, or people who agree; else
unattributed). Each group's F1 is the overall score's metric and average (`metrics.f1_score`) on that group's
samples alone. Predictions are matched to samples by the index each batch carries, never by their order in
the pass: the loader drops unreadable images from their batches, so the n-th prediction need not be the
n-th sample.
"""

from __future__ import annotations

from typing import Any

import torch

from handgesture.data.annotations import Sample, image_name
from handgesture.data.people import AGE_BANDS, ATTRIBUTES, groups_of
from handgesture.metrics import f1_score


class PredictionRecorder:
    """Every evaluated sample's index, target and predicted gesture (an evaluation `Observer`)."""

    def __init__(self) -> None:
        self.indices: list[torch.Tensor] = []
        self.targets: list[torch.Tensor] = []
        self.predicted: list[torch.Tensor] = []

    def __call__(self, batch: dict, outputs: dict[str, torch.Tensor]) -> None:
        self.indices.append(batch["index"].cpu())
        self.targets.append(batch["gesture"].cpu())
        self.predicted.append(outputs["gesture"].argmax(dim=1).cpu())

    def columns(self) -> tuple[list[int], torch.Tensor, torch.Tensor]:
        """Sample indices (into the dataset's samples), targets and predictions, row by row."""
        if not self.indices:
            empty = torch.zeros(0, dtype=torch.long)
            return [], empty, empty
        return torch.cat(self.indices).tolist(), torch.cat(self.targets), torch.cat(self.predicted)


def fairness_section(
    meta: dict[str, Any], samples: list[Sample], recorded: PredictionRecorder, num_classes: int, average: str
) -> dict[str, Any] | None:
    """The report's `fairness` section; None when no evaluated image has `meta` (`data.people.read_meta`)."""
    if not meta:
        return None
    indices, targets, predicted = recorded.columns()
    groups = [groups_of(meta.get(image_name(samples[i].image))) for i in indices]
    return {
        "metric": "f1_score",
        "average": average,
        "samples": len(indices),
        "attributes": {
            attribute: attribute_scores(
                [g[attribute] for g in groups], predicted, targets, num_classes, average, attribute
            )
            for attribute in ATTRIBUTES
        },
    }


def attribute_scores(
    groups: list[str | None],
    predicted: torch.Tensor,
    targets: torch.Tensor,
    num_classes: int,
    average: str,
    attribute: str = "",
) -> dict[str, Any]:
    """One row per group that has samples (group, count, F1), the unattributed count and the widest gap."""
    rows = []
    for group in _ordered({g for g in groups if g is not None}, attribute):
        mine = torch.tensor([g == group for g in groups], dtype=torch.bool)
        score = f1_score(predicted[mine], targets[mine], num_classes, average)
        rows.append({"group": group, "count": int(mine.sum()), "f1_score": score})
    return {"groups": rows, "unattributed": groups.count(None), "gap": widest_gap(rows)}


def _ordered(groups: set[str], attribute: str) -> list[str]:
    """Age bands youngest first; other groups alphabetically."""
    if attribute == "age":
        return [band for band in AGE_BANDS if band in groups]
    return sorted(groups)


def widest_gap(rows: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The highest F1 minus the lowest, naming both groups (two different ones, even when all score the
    same); None with fewer than two groups."""
    if len(rows) < 2:
        return None
    highest = max(rows, key=lambda row: row["f1_score"])
    lowest = min((row for row in rows if row is not highest), key=lambda row: row["f1_score"])
    return {
        "f1_score": highest["f1_score"] - lowest["f1_score"],
        "highest": highest["group"],
        "lowest": lowest["group"],
    }


def fairness_summary(section: dict[str, Any]) -> dict[str, Any]:
    """The section in short, rounded for reading: per attribute, each group's count and F1, and the gap."""
    summary = {}
    for attribute, scores in section["attributes"].items():
        gap = scores["gap"]
        summary[attribute] = {
            "groups": {row["group"]: [row["count"], round(row["f1_score"], 4)] for row in scores["groups"]},
            "unattributed": scores["unattributed"],
            "gap": None if gap is None else [round(gap["f1_score"], 4), gap["highest"], gap["lowest"]],
        }
    return summary


def fairness_markdown(section: dict[str, Any] | None) -> list[str]:
    """The section as markdown: a table per attribute (group, count, F1) and its gap line; nothing without
    a section."""
    if section is None:
        return []
    lines = [
        f"## Gesture F1 by group ({section['average']}, as the overall score)",
        "",
        "Groups from the annotations' automatic `meta`; a sample whose frame shows people of different "
        "groups (or has no usable value) is unattributed and in no group.",
    ]
    for attribute, scores in section["attributes"].items():
        lines += ["", f"### {attribute}", "", "| group | count | F1 |", "| --- | --- | --- |"]
        lines += [f"| {r['group']} | {r['count']} | {r['f1_score']:.4f} |" for r in scores["groups"]]
        lines += ["", f"{_gap_line(scores['gap'])}; {scores['unattributed']} samples unattributed"]
    return [*lines, ""]


def _gap_line(gap: dict[str, Any] | None) -> str:
    if gap is None:
        return "widest gap: none (fewer than two groups)"
    return f"widest gap: {gap['f1_score']:.4f} ({gap['highest']} over {gap['lowest']})"
