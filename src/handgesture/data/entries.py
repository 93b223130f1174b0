"""One image's annotation entry, in HaGRID v1 or v2 format, validated: its (box, label) pairs, the image's
leading hand and its person.

v1 (the classifier's data): `bboxes`, `labels`, `leading_hand` ("right"/"left"), `user_id`. A `no_gesture`
box is the hand not making the gesture, so it takes the opposite hand.
v2 (the current release): no `leading_hand`; `united_bbox` / `united_label`, aligned with `bboxes`, hold one
box around both hands of a two-handed gesture (else null), and that box is the sample; `no_gesture` has its
own file and folder. The leading hand is unknown (`UNKNOWN_HAND`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from handgesture.errors import DataError
from handgesture.labels import HAND_INDEX, NO_GESTURE, UNKNOWN_HAND

Box = tuple[float, float, float, float]


@dataclass(frozen=True)
class Entry:
    pairs: list[tuple[Box, str]]
    leading_hand: int  # HAND_INDEX value, or UNKNOWN_HAND (v2)
    user_id: str
    labels: tuple[str, ...] = ()  # one per box, as annotated (v2's full-frame label rule reads these)

    def hand_of(self, label: str) -> int:
        if label == NO_GESTURE and self.leading_hand != UNKNOWN_HAND:
            return 1 - self.leading_hand
        return self.leading_hand


def parse_entry(entry, where: str) -> Entry:
    """Validate one image entry (v1 when it has `leading_hand`, else v2); errors name `where`."""
    if not isinstance(entry, dict):
        raise DataError(f"{where}: expected an object, got {type(entry).__name__}")
    for key in ("bboxes", "labels", "user_id"):
        if key not in entry:
            raise DataError(
                f"{where}: missing key {key!r} (expected bboxes, labels, user_id, and leading_hand in v1)"
            )
    boxes = _boxes(entry["bboxes"], "bboxes", "bbox", where)
    labels = _labels(entry["labels"], len(boxes), "labels", where)
    user_id = entry["user_id"]
    if not isinstance(user_id, str) or not user_id:
        raise DataError(f"{where}: 'user_id' must be a non-empty string, got {user_id!r}")
    if "leading_hand" in entry:
        pairs, hand = list(zip(boxes, labels, strict=True)), _hand(entry["leading_hand"], where)
        return Entry(pairs, hand, user_id, tuple(labels))
    return Entry(_united_pairs(entry, boxes, labels, where), UNKNOWN_HAND, user_id, tuple(labels))


def _hand(hand, where: str) -> int:
    if hand not in HAND_INDEX:
        raise DataError(f"{where}: 'leading_hand' must be 'right' or 'left', got {hand!r}")
    return HAND_INDEX[hand]


def _united_pairs(entry: dict, boxes: list[Box], labels: list[str], where: str) -> list[tuple[Box, str]]:
    """v2: each hand's box, or the united box of its two-handed gesture (once per image)."""
    united = entry.get("united_bbox") or [None] * len(boxes)
    united_labels = entry.get("united_label") or [None] * len(boxes)
    if not isinstance(united, list) or len(united) != len(boxes):
        raise DataError(f"{where}: 'united_bbox' must be a list aligned with 'bboxes' (null where none)")
    united_boxes = _boxes(united, "united_bbox", "united_bbox", where, optional=True)
    united_labels = _labels(united_labels, len(boxes), "united_label", where, optional=True)
    pairs: list[tuple[Box, str]] = []
    seen: set[tuple[Box, str]] = set()  # the pairs so far: a set, so an image of n boxes costs n lookups
    for i, (box, label) in enumerate(zip(boxes, labels, strict=True)):
        if united_boxes[i] is None:
            pair = (box, label)
        elif united_labels[i] is None:
            raise DataError(f"{where}: united_bbox {i} has no united_label")
        else:
            pair = (united_boxes[i], united_labels[i])
            if pair in seen:
                continue
        pairs.append(pair)
        seen.add(pair)
    return pairs


def _boxes(values, field: str, name: str, where: str, optional: bool = False) -> list:
    if not isinstance(values, list):
        raise DataError(f"{where}: {field!r} must be a list")
    boxes = []
    for i, box in enumerate(values):
        if box is None and optional:
            boxes.append(None)
        elif isinstance(box, list) and len(box) == 4 and all(_is_number(v) for v in box):
            boxes.append(tuple(float(v) for v in box))
        else:
            raise DataError(f"{where}: {name} {i} must be 4 finite numbers [x, y, w, h], got {box!r}")
    return boxes


def _labels(values, count: int, name: str, where: str, optional: bool = False) -> list:
    if not isinstance(values, list):
        raise DataError(f"{where}: {name!r} must be a list")
    if len(values) != count:
        raise DataError(f"{where}: {count} bboxes but {len(values)} {name} (expected equal lengths)")
    for i, label in enumerate(values):
        if not isinstance(label, str) and not (optional and label is None):
            raise DataError(f"{where}: {name.removesuffix('s')} {i} must be a string, got {label!r}")
    return list(values)


def _is_number(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
