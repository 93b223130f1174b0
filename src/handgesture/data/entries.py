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
import sys
from dataclasses import dataclass

from handgesture.errors import DataError
from handgesture.labels import HAND_INDEX, UNKNOWN_HAND

Box = tuple[float, float, float, float]


@dataclass(frozen=True)
class Entry:
    pairs: list[tuple[Box, str]]
    leading_hand: int  # HAND_INDEX value, or UNKNOWN_HAND (v2)
    user_id: str
    labels: tuple[str, ...] = ()  # one per box, as annotated (v2's full-frame label rule reads these)


# The fields an entry is read by, in the order `parse_fields` takes them; MISSING where the entry lacks one.
FIELDS = ("bboxes", "labels", "user_id", "leading_hand", "united_bbox", "united_label")
MISSING = object()


def parse_entry(entry, where: str) -> Entry:
    """Validate one image entry (v1 when it has `leading_hand`, else v2); errors name `where`."""
    if not isinstance(entry, dict):
        raise DataError(f"{where}: expected an object, got {type(entry).__name__}")
    return parse_fields(tuple(entry.get(name, MISSING) for name in FIELDS), where)


def parse_fields(fields: tuple, where: str) -> Entry:
    """`parse_entry` of an entry given as its FIELDS' values (`entry_json` decodes files to these)."""
    return _plain_entry(fields) or _checked_entry(fields, where)


def _plain_entry(fields: tuple) -> Entry | None:
    """The entry as HaGRID writes nearly all of them (float boxes, a string label each, a person, v1's hand or
    no united box), checked in one pass: the index parses a million. None for anything else, which
    `_checked_entry` then parses, or refuses with its message."""
    bboxes, labels, user_id, hand, united, united_labels = fields
    if type(labels) is not list or type(user_id) is not str or not user_id:
        return None
    boxes = _float_boxes(bboxes)
    if boxes is None or len(labels) != len(boxes) or not all(type(label) is str for label in labels):
        return None
    pairs, user_id = list(zip(boxes, labels, strict=True)), sys.intern(user_id)  # one copy per person
    if hand is not MISSING:
        known = type(hand) is str and hand in HAND_INDEX
        return Entry(pairs, HAND_INDEX[hand], user_id, tuple(labels)) if known else None
    if not (_all_none(united, len(boxes)) and _all_none(united_labels, len(boxes), strings=True)):
        return None
    return Entry(pairs, UNKNOWN_HAND, user_id, tuple(labels))


def _float_boxes(bboxes) -> list | None:
    if type(bboxes) is not list:
        return None
    boxes = []
    for box in bboxes:
        if type(box) is not list or len(box) != 4 or not _plain_floats(*box):
            return None
        boxes.append(tuple(box))
    return boxes


def _all_none(values, count: int, strings: bool = False) -> bool:
    """No united box (or label) for any hand: absent, null, or a list of nulls (of labels, strings may
    stand where no box is)."""
    if values is MISSING or values is None:
        return True
    if type(values) is not list or len(values) != count:
        return False
    return all(v is None or (strings and type(v) is str) for v in values)


def _checked_entry(fields: tuple, where: str) -> Entry:
    bboxes, labels, user_id, leading_hand, united, united_labels = fields
    for key, value in zip(("bboxes", "labels", "user_id"), fields, strict=False):
        if value is MISSING:
            raise DataError(
                f"{where}: missing key {key!r} (expected bboxes, labels, user_id, and leading_hand in v1)"
            )
    boxes = _boxes(bboxes, "bboxes", "bbox", where)
    labels = _labels(labels, len(boxes), "labels", where)
    if not isinstance(user_id, str) or not user_id:
        raise DataError(f"{where}: 'user_id' must be a non-empty string, got {user_id!r}")
    user_id = sys.intern(user_id) if type(user_id) is str else user_id  # one copy per person, not per image
    if leading_hand is not MISSING:
        pairs, hand = list(zip(boxes, labels, strict=True)), _hand(leading_hand, where)
        return Entry(pairs, hand, user_id, tuple(labels))
    united = None if united is MISSING else united
    united_labels = None if united_labels is MISSING else united_labels
    pairs = _united_pairs(united, united_labels, boxes, labels, where)
    return Entry(pairs, UNKNOWN_HAND, user_id, tuple(labels))


def _hand(hand, where: str) -> int:
    if hand not in HAND_INDEX:
        raise DataError(f"{where}: 'leading_hand' must be 'right' or 'left', got {hand!r}")
    return HAND_INDEX[hand]


def _united_pairs(
    united, united_labels, boxes: list[Box], labels: list[str], where: str
) -> list[tuple[Box, str]]:
    """v2: each hand's box, or the united box of its two-handed gesture (once per image)."""
    united = united or [None] * len(boxes)
    united_labels = united_labels or [None] * len(boxes)
    if not isinstance(united, list) or len(united) != len(boxes):
        raise DataError(f"{where}: 'united_bbox' must be a list aligned with 'bboxes' (null where none)")
    united_boxes = _boxes(united, "united_bbox", "united_bbox", where, optional=True)
    united_labels = _labels(united_labels, len(boxes), "united_label", where, optional=True)
    if united_boxes.count(None) == len(united_boxes):  # most images: no two-handed gesture, the hands' own
        return list(zip(boxes, labels, strict=True))
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
        if type(box) is list and len(box) == 4 and _plain_floats(*box):
            boxes.append(tuple(box))
        elif box is None and optional:
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


def _plain_floats(x, y, w, h) -> bool:
    """Four finite floats, the common case, checked in a few operations (a sum of finite floats is finite
    unless it overflows: then the full check below decides)."""
    return (
        type(x) is float and type(y) is float and type(w) is float and type(h) is float
        and math.isfinite(x + y + w + h)
    )  # fmt: skip


def _is_number(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
