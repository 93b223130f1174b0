"""A gesture file's JSON decoded fast to what the reader uses: image id -> the fields `entries` reads.

HaGRID v2's entries carry 21 landmark points per hand and the people's meta: most of a file's bytes, never
read by the index. The standard decoder builds a Python float for each point (1.5 M hands: about 60 M
objects, most of the index's time and memory); msgspec's typed decoder skips unread fields without building
them (about 7x less time on v2's files than orjson, 14x less than json). Only its happy path is used: a file
it refuses or would read differently (not an object of objects, NaN, huge integers, bad UTF-8) is decoded
again by the standard decoder, so what is read and every error message stay exactly as before.

Nearly every file is as HaGRID writes it: `decode_plain` reads such a file straight into typed entries
(`PlainEntry`: finite float boxes as tuples, string labels, a person), so most per-entry checks run in C;
a file with anything else in it is read by `decode_entries` and checked in Python, as before.
"""

from __future__ import annotations

import sys
from typing import Annotated, Any, Literal

import msgspec

from handgesture.data.entries import FIELDS, MISSING


class _Entry(msgspec.Struct):
    """The fields `entries.parse_fields` reads, in its order; MISSING where the entry lacks the key (not the
    same as null)."""

    bboxes: Any = MISSING
    labels: Any = MISSING
    user_id: Any = MISSING
    leading_hand: Any = MISSING
    united_bbox: Any = MISSING
    united_label: Any = MISSING


assert _Entry.__struct_fields__ == FIELDS  # noqa: S101 (a field added to one and not the other)
_DECODER = msgspec.json.Decoder(dict[str, _Entry])


def decode_entries(data: bytes) -> dict[str, tuple] | None:
    """Image id -> its entry's FIELDS values (for `entries.parse_fields`); None when the fast decoder refuses
    the bytes (the caller then decodes them as it always did, errors included)."""
    try:
        found = _DECODER.decode(data)
    except (msgspec.DecodeError, ValueError, RecursionError):  # bad UTF-8 is a UnicodeDecodeError
        return None
    astuple = msgspec.structs.astuple
    return {image_id: astuple(entry) for image_id, entry in found.items()}


# A finite float (msgspec takes JSON's integers as floats, as the checked path converts them): an infinity,
# from a literal too large, falls outside the range and sends the file to the checked path.
_Finite = Annotated[float, msgspec.Meta(ge=-sys.float_info.max, le=sys.float_info.max)]
Box = tuple[_Finite, _Finite, _Finite, _Finite]


class PlainEntry(msgspec.Struct, gc=False):
    """An entry as HaGRID writes it, typed: v1's with `leading_hand`, v2's with united boxes or nulls. It
    checks itself as it is decoded (an error there sends the whole file to the checked path, for its
    message): boxes and labels aligned, a label for each united box. No united box reads as null."""

    bboxes: list[Box]
    labels: list[str]
    user_id: Annotated[str, msgspec.Meta(min_length=1)]
    leading_hand: Literal["right", "left"] | msgspec.UnsetType = msgspec.UNSET  # absent in v2 (not null)
    united_bbox: list[Box | None] | None = None
    united_label: list[str | None] | None = None

    def __post_init__(self):
        count, united, united_labels = len(self.bboxes), self.united_bbox, self.united_label
        if len(self.labels) != count:
            raise ValueError("labels not aligned with bboxes")
        self.user_id = sys.intern(self.user_id)  # one copy of each person's id, not one per image
        if self.leading_hand is not msgspec.UNSET:  # v1: united boxes are not read
            self.united_bbox = None
            return
        if (united_labels is not None and len(united_labels) != count) or (
            united is not None and len(united) != count
        ):
            raise ValueError("united boxes or labels not aligned with bboxes")
        if united is not None and united.count(None) == count:
            self.united_bbox = None
        elif united is not None and (united_labels is None or any(
            label is None for box, label in zip(united, united_labels, strict=True) if box is not None
        )):  # fmt: skip
            raise ValueError("a united box with no label")

    def pairs(self):
        """The (box, label) pairs: each hand's box, or (v2) its two-handed gesture's united box, once."""
        if self.united_bbox is None:
            return zip(self.bboxes, self.labels, strict=True)
        pairs, seen = [], set()  # a set: an image of n boxes costs n lookups
        for box, label, united_box, united_label in zip(
            self.bboxes, self.labels, self.united_bbox, self.united_label, strict=True
        ):
            pair = (box, label) if united_box is None else (united_box, united_label)
            if united_box is None or pair not in seen:
                pairs.append(pair)
                seen.add(pair)
        return pairs


_PLAIN = msgspec.json.Decoder(dict[str, PlainEntry])


def decode_plain(data: bytes) -> dict[str, PlainEntry] | None:
    """Image id -> its typed entry when every entry of the file is as HaGRID writes it, else None."""
    try:
        return _PLAIN.decode(data)
    except (msgspec.DecodeError, ValueError, RecursionError):
        return None
