"""A gesture file's JSON decoded fast to what the reader uses: image id -> the fields `entries` reads.

HaGRID v2's entries carry 21 landmark points per hand and the people's meta: most of a file's bytes, never
read by the index. The standard decoder builds a Python float for each point (1.5 M hands: about 60 M
objects, most of the index's time and memory); msgspec's typed decoder skips unread fields without building
them (about 7x less time on v2's files than orjson, 14x less than json). Only its happy path is used: a file
it refuses or would read differently (not an object of objects, NaN, huge integers, bad UTF-8) is decoded
again by the standard decoder, so what is read and every error message stay exactly as before.
"""

from __future__ import annotations

from typing import Any

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
