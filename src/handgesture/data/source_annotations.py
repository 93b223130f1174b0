"""`read_annotations` for data that is not a plain local folder: annotations and frames in archives, in
per-gesture archives or on S3 (`data.sources`). The same samples, in the same order, with the same checks
and counts as a folder's; each image is a locator, and whether it is there comes from the listing (a
central directory, a prefix listing), not from opening it.
"""

from __future__ import annotations

import json
import logging

from handgesture.data import sources
from handgesture.data.annotations import (
    AnnotationSet,
    Sample,
    _full_frame_sample,
    _samples_for_image,
    _Tally,
)
from handgesture.data.entries import Entry, parse_entry
from handgesture.errors import DataError
from handgesture.labels import NO_GESTURE

log = logging.getLogger(__name__)


def read_source_annotations(
    annotations, dataset, targets, subset: int = -1, full_frame: bool = False
) -> AnnotationSet:
    """See `annotations.read_annotations`; ``annotations`` and ``dataset`` are `sources` specs."""
    index = {name: i for i, name in enumerate(targets)}
    gestures = sorted(index)
    files = sources.annotation_files(annotations, gestures)
    missing_targets = sorted(set(gestures) - set(files) - {NO_GESTURE})
    if not files:
        raise DataError(
            f"No annotation files for targets {gestures} in {annotations} "
            f"(expected <gesture>.json there; images expected under {dataset})"
        )
    if missing_targets:
        log.warning("No annotation file for targets %s in %s: no samples", missing_targets, annotations)
    images = sources.dataset_files(dataset, gestures)
    samples, tally = [], _Tally()
    # The next files are fetched while one is parsed (neighbours in an S3 archive by one GET): two reads
    # ahead at most, and only one while it holds over 16 MiB (HaGRID v2's files hold 1.2 GB together).
    with sources.prefetched([ref.locator for ref in files.values()], depth=2):
        for gesture, ref in files.items():
            entries = _entries(ref.locator, subset)
            samples += _gesture_samples(gesture, entries, images, index, tally, full_frame, ref.locator)
    if tally.missing:
        log.warning("%d annotated images are missing under %s and were skipped", tally.missing, dataset)
    if not samples:
        raise DataError(
            f"No usable samples: looked in annotations {annotations} and images {dataset} "
            f"({tally.missing} images missing; targets {list(targets)})"
        )
    notes = tally.notes(missing_targets, annotations)
    return AnnotationSet(samples, tally.missing, (str(annotations), str(dataset)), notes)


def _entries(locator: str, subset: int) -> list[tuple[str, Entry]]:
    """A gesture file's entries by image id (sorted; the first ``subset``), all validated first."""
    data = load_json(sources.read_bytes(locator), locator)
    ids = sorted(data)[:subset] if subset > 0 else sorted(data)
    entries = []
    for image_id in ids:
        where = f"{locator}, image {image_id!r}"
        if not image_id or any(part in image_id for part in ("/", "\\", "..", "\0")):
            raise DataError(f"{where}: image id escapes the dataset folder (expected a plain name)")
        entries.append((image_id, parse_entry(data[image_id], where)))
    return entries


def _gesture_samples(gesture, entries, images, index, tally: _Tally, full_frame: bool, where: str):
    samples: list[Sample] = []
    for image_id, entry in entries:
        found = images.get(f"{gesture}/{image_id}.jpg")
        if found is None:
            tally.missing += 1
        elif full_frame:
            samples += _full_frame_sample(found.locator, gesture, entry, index, tally)
        else:
            samples += _samples_for_image(found.locator, entry, index, tally, where)
    return samples


def load_json(data: bytes, where: str) -> dict:
    """An annotation file's JSON object; errors name the file (its locator)."""
    try:
        found = json.loads(data)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DataError(f"{where}: invalid JSON ({exc})") from None
    except RecursionError:
        raise DataError(
            f"{where}: JSON nested too deeply (expected HaGRID's annotations: a few levels)"
        ) from None
    if not isinstance(found, dict):
        raise DataError(
            f"{where}: expected an object mapping image id -> annotation, got {type(found).__name__}"
        )
    return found
