"""The crop cache key's text for its samples, byte for byte what it always was (one
``json.dumps([name, box, gesture, leading_hand, user_id, identity])`` per sample), built with less Python per
sample: HaGRID v2 has 1.5 M of them, and json.dumps' per-call setup was most of the key's time.
"""

from __future__ import annotations

import json
import math
from json.encoder import encode_basestring_ascii as _string  # json.dumps' own string encoder (ensure_ascii)

from handgesture.data import sources
from handgesture.data.annotations import image_name

CHUNK = 4096  # samples per digest update: fewer calls, bounded memory


def key_chunks(samples, sizes=()):
    """The key's bytes for ``samples`` (image names, boxes, labels, people, and each image's identity), in
    chunks to feed a hash. ``sizes``, when given for every sample, are their images' sizes as the reader
    stat-ed them (`AnnotationSet.sizes`: plain files); else one stat or lookup per distinct image."""
    identities: dict[str, int | str] = {}  # a file's size; an object's ETag and size; a member's CRC and size
    known = sizes if len(sizes) == len(samples) else None
    lines = []
    for i, s in enumerate(samples):
        identity = known[i] if known is not None else identities.get(s.image)
        if identity is None:
            identity = identities[s.image] = sources.identity(s.image)
        lines.append(sample_line(image_name(s.image), s.box, s.gesture, s.leading_hand, s.user_id, identity))
        if len(lines) == CHUNK:
            yield "".join(lines).encode()
            lines = []
    if lines:
        yield "".join(lines).encode()


def sample_line(name, box, gesture, hand, user, identity) -> str:
    """``json.dumps([name, list(box), gesture, hand, user, identity])``; written out directly when every
    value is of the type the reader makes (finite floats, plain ints and strings), else by json itself."""
    if _plain(name, box, gesture, hand, user, identity):
        x, y, w, h = box
        last = repr(identity) if type(identity) is int else _string(identity)
        return (
            f"[{_string(name)}, [{x!r}, {y!r}, {w!r}, {h!r}], {gesture!r}, {hand!r}, {_string(user)}, {last}]"
        )
    return json.dumps([name, list(box), gesture, hand, user, identity])


def _plain(name, box, gesture, hand, user, identity) -> bool:
    """Whether json would write these as repr and its string encoder do (bool is an int json writes as
    true/false; NaN and infinities it writes as NaN/Infinity; a float subclass may repr differently)."""
    return (
        type(name) is str and type(user) is str and type(gesture) is int and type(hand) is int
        and type(identity) in (int, str) and len(box) == 4 and _floats(*box)
    )  # fmt: skip


def _floats(x, y, w, h) -> bool:
    return (
        type(x) is float
        and type(y) is float
        and type(w) is float
        and type(h) is float
        and math.isfinite(x + y + w + h)
    )
