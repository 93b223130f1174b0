"""Who is in a frame: HaGRID v2's `meta` (automatic estimates of age, gender and race, one per person in the
frame) read from the annotation files, and the rule that puts each sample in a group per attribute, or none.

The rule. `meta` lists one value per person, but nothing links a person to a box: v2's own example has two
hand boxes and one person, so "box i is person i" would be a guess. A sample's group for an attribute is
therefore the group that every person in its frame falls in:

- one person in the frame: their group, for every sample (box) of the frame;
- several people, all in the same group (two women, say): that group;
- several people in different groups, no people (empty lists), no `meta`, or a value that is missing or
  not of its type (a gender that is not a string, an age that is not a finite number): no group. The sample
  is *unattributed* for that attribute: counted, and left out of every group.

Each attribute is judged on its own: a frame of a woman of 25 and a woman of 40 is "female", and
unattributed for age. Gender and race are the values as written ("female", "White", ...).

Age bands, in years as estimated (floats): "18-30" (18 <= age < 31), "31-45" (31 <= age < 46) and "46+";
so 30.9 is in 18-30. An estimate under 18 is a band of its own, "under 18": HaGRID's subjects are adults,
but the estimates are automatic, and dropping them silently would hide the model's score on them.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from pathlib import Path

from handgesture.data import sources
from handgesture.data.annotations import image_name, load_annotation_file
from handgesture.data.source_annotations import load_json

ATTRIBUTES = ("gender", "race", "age")
UNDER_18 = "under 18"
AGE_BANDS = (UNDER_18, "18-30", "31-45", "46+")
_BAND_STARTS = ((46.0, "46+"), (31.0, "31-45"), (18.0, "18-30"))  # the first start at or below an age


def age_band(age) -> str | None:
    """The band of an estimated age in years; None for a value that is not a finite number."""
    if not isinstance(age, int | float) or isinstance(age, bool) or not math.isfinite(age):
        return None
    return next((band for start, band in _BAND_STARTS if age >= start), UNDER_18)


def _group_of_value(attribute: str, value) -> str | None:
    if attribute == "age":
        return age_band(value)
    return value if isinstance(value, str) and value else None


def group_of(attribute: str, values) -> str | None:
    """The group every person of a frame falls in for `attribute`, from `meta[attribute]` (one value per
    person); None when there is nobody, a value is unusable, or the people fall in different groups."""
    if not isinstance(values, list) or not values:
        return None
    groups = {_group_of_value(attribute, value) for value in values}
    return groups.pop() if len(groups) == 1 else None


def groups_of(meta) -> dict[str, str | None]:
    """A frame's group for each attribute (None: unattributed), from its entry's `meta` (None if absent)."""
    if not isinstance(meta, dict):
        return dict.fromkeys(ATTRIBUTES)
    return {attribute: group_of(attribute, meta.get(attribute)) for attribute in ATTRIBUTES}


def read_meta(annotations_dir, images: Iterable[str]) -> dict[str, object]:
    """The `meta` of each of `images` (paths ``<dataset>/<gesture>/<id>.jpg``) that has one, by image name
    (``<gesture>/<id>.jpg``), from ``<annotations_dir>/<gesture>.json``: the files the samples were read
    from. Empty when none of them has `meta` (HaGRID v1's annotations, say)."""
    wanted: dict[str, set[str]] = {}
    for image in images:
        gesture, file = image_name(image).split("/")
        wanted.setdefault(gesture, set()).add(Path(file).stem)
    found = {}
    for gesture, ids in sorted(wanted.items()):
        path = Path(annotations_dir) / f"{gesture}.json"
        if not sources.is_plain_folder(annotations_dir):
            located = sources.annotation_files(annotations_dir, [gesture]).get(gesture)
            file = load_json(sources.read_bytes(located.locator), located.locator) if located else {}
        elif path.is_file():
            file = load_annotation_file(path)
        else:
            continue
        for image_id, entry in file.items():
            if image_id in ids and isinstance(entry, dict) and "meta" in entry:
                found[f"{gesture}/{image_id}.jpg"] = entry["meta"]
    return found
