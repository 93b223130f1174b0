"""Read HaGRID-format annotations (v1 or v2, see `entries`) into per-box samples, and split them by person."""

from __future__ import annotations

import functools
import gc
import json
import logging
import os
import random
from array import array
from dataclasses import dataclass, field
from pathlib import Path

from handgesture.data import sources
from handgesture.data.entries import Entry, parse_entry, parse_fields
from handgesture.data.entry_json import decode_entries
from handgesture.data.index_halves import read_files
from handgesture.data.index_plain import image_size, plain_entries, plain_id, plain_samples
from handgesture.data.index_samples import Sample, box_samples, frame_sample
from handgesture.data.index_samples import Tally as _Tally
from handgesture.errors import DataError
from handgesture.labels import NO_GESTURE

log = logging.getLogger(__name__)


@dataclass
class AnnotationSet:
    samples: list[Sample]
    missing_images: int
    folders: tuple[str, ...]  # the annotations and images folders that were read
    notes: list[str] = field(default_factory=list)  # what was skipped besides missing images, and why
    # Each sample's image size in bytes, as stat-ed while reading a plain folder (empty otherwise): what the
    # cache key holds for a local file, so keying v2's million images needs no second stat of each.
    sizes: array = field(default_factory=lambda: array("q"))


def _image_path(gesture_dir: Path, folder: str, image_id: str, where: str) -> str:
    """The image's path in ``folder`` (``gesture_dir`` normalised); refuses ids that would read a file
    outside it (`index_plain.plain_id`)."""
    if not plain_id(image_id):
        raise DataError(f"{where}: image id escapes the dataset folder {gesture_dir} (expected a plain name)")
    return f"{folder}{os.sep}{image_id}.jpg"


def _load_json(path: Path):
    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: invalid JSON ({exc})") from exc
    except RecursionError:  # the decoder recurses once per level of nesting
        raise DataError(
            f"{path}: JSON nested too deeply (expected HaGRID's annotations: a few levels)"
        ) from None
    if not isinstance(data, dict):
        raise DataError(
            f"{path}: expected an object mapping image id -> annotation, got {type(data).__name__}"
        )
    return data


def _load_entries(path: Path, data: bytes) -> tuple[dict, object]:
    """A gesture file's entries (its bytes ``data``) and the function that parses one: the fast decoder's
    field tuples (`entry_json`: v2's landmarks are never built), or, for a file it refuses, the file read as
    always, so its error is the same."""
    fast = decode_entries(data)
    return (_load_json(path), parse_entry) if fast is None else (fast, parse_fields)


def load_annotation_file(path: Path) -> dict:
    """One ``<gesture>.json``: image id -> entry, unvalidated; errors name the file (`data.people` reads
    its `meta` with this)."""
    return _load_json(path)


def _samples_for_image(image: str, entry: Entry, index: dict[str, int], tally: _Tally, where: str):
    """`index_samples.box_samples` of a checked entry (`source_annotations` reads its entries so)."""
    return box_samples(image, entry.pairs, entry.leading_hand, entry.user_id, index, tally, where)


def _full_frame_sample(image: str, folder: str, entry: Entry, index: dict[str, int], tally: _Tally):
    """`index_samples.frame_sample` of a checked entry (`source_annotations` reads its entries so)."""
    return frame_sample(image, folder, entry.labels, entry.user_id, index, tally)


def _read_gesture_file(
    path: Path, gesture_dir: Path, tally: _Tally, subset: int, index: dict[str, int], full_frame: bool
):
    data = path.read_bytes()
    plain = plain_entries(data, subset)  # as HaGRID writes it: checked while decoded
    if plain is None:
        samples, sizes = _checked_samples(path, data, gesture_dir, subset, index, tally, full_frame)
    else:
        samples, sizes = plain_samples(*plain, gesture_dir, path, index, tally, full_frame)
    return samples, sizes


def _warn_skipped(path: Path, tally: _Tally) -> None:
    if skipped := tally.bad_boxes[str(path)]:
        log.warning("%s: %d boxes outside their frame or empty were skipped", path, skipped)


def _checked_samples(path: Path, data: bytes, gesture_dir: Path, subset, index, tally: _Tally, full_frame):
    """`index_plain.plain_samples` of any other file, each entry checked in Python first (errors name it)."""
    decoded, parse = _load_entries(path, data)
    ids = sorted(decoded)
    parsed, folder = [], os.path.normpath(gesture_dir)
    for image_id in ids[:subset] if subset > 0 else ids:
        where = f"{path}, image {image_id!r}"
        image = _image_path(gesture_dir, folder, image_id, where)
        parsed.append((image_id, image, parse(decoded[image_id], where)))
    del decoded  # only the parsed entries are needed from here on
    samples, sizes, dataset_root, where = [], array("q"), os.path.realpath(gesture_dir.parent), str(path)
    for image_id, image, entry in parsed:
        size = image_size(image, dataset_root, path, image_id)
        if size < 0:
            tally.missing += 1
            continue
        found = (
            _full_frame_sample(image, gesture_dir.name, entry, index, tally)
            if full_frame
            else _samples_for_image(image, entry, index, tally, where)
        )
        samples += found
        sizes.extend([size] * len(found))
    return samples, sizes


def _gc_paused(read):
    """``read`` with Python's cyclic garbage collector paused: reading builds millions of small objects (no
    cycles among them), and each collection of the oldest generation walks all of them again; paused, v2's
    index is read in about a third of the time."""

    @functools.wraps(read)
    def paused(*args, **kwargs):
        was_enabled = gc.isenabled()
        gc.disable()
        try:
            return read(*args, **kwargs)
        finally:
            if was_enabled:
                gc.enable()

    return paused


@_gc_paused
def read_annotations(
    annotations_dir, dataset_dir, targets, subset: int = -1, full_frame: bool = False
) -> AnnotationSet:
    """Read ``<annotations_dir>/<gesture>.json`` for each target into one Sample per box (with
    ``full_frame``: one per image, v2's label rule, the whole frame as its box: `data.full_frames`).

    Images are ``<dataset_dir>/<gesture>/<image_id>.jpg``; missing ones are skipped and counted. Samples come
    sorted by gesture file, then image id, then box index. What was skipped is in the result's `notes`.
    Archives and S3 (`data.sources`) are read by `source_annotations`; plain folders here, as always.
    """
    if not (sources.is_plain_folder(annotations_dir) and sources.is_plain_folder(dataset_dir)):
        from handgesture.data.source_annotations import read_source_annotations  # it builds on this module

        return read_source_annotations(annotations_dir, dataset_dir, targets, subset, full_frame)
    ann_dir, data_dir = Path(annotations_dir).absolute(), Path(dataset_dir).absolute()
    folders = (str(ann_dir), str(data_dir))
    index = {name: i for i, name in enumerate(targets)}
    # v1 keeps no_gesture boxes in the gesture files; v2 also has a no_gesture.json of its own.
    files = {g: ann_dir / f"{g}.json" for g in sorted(index)}
    present = {g: p for g, p in files.items() if p.is_file()}
    missing_targets = sorted(set(files) - set(present) - {NO_GESTURE})
    if not ann_dir.is_dir():
        raise DataError(f"annotations folder {ann_dir} does not exist (expected <gesture>.json files there)")
    if not present:
        raise DataError(
            f"No annotation files for targets {sorted(files)} in {ann_dir} "
            f"(expected <gesture>.json there; images expected under {data_dir})"
        )
    if missing_targets:
        log.warning(
            "No annotation file for targets %s in %s; those gestures have no samples",
            missing_targets,
            ann_dir,
        )
    files = {path: data_dir / gesture for gesture, path in present.items()}
    read = functools.partial(_read_gesture_file, subset=subset, index=index, full_frame=full_frame)
    samples, sizes, tally = read_files(files, read, _warn_skipped)
    if tally.missing:
        log.warning("%d annotated images are missing under %s and were skipped", tally.missing, data_dir)
    if tally.unknown_labels:
        log.warning("Boxes with unknown labels were skipped: %s", dict(tally.unknown_labels))
    if not samples:
        raise DataError(
            f"No usable samples: looked in annotations {ann_dir} and images {data_dir} "
            f"({tally.missing} images missing; targets {list(targets)})"
        )
    notes = tally.notes(missing_targets, ann_dir)
    return AnnotationSet(samples, tally.missing, folders, notes, sizes)


def split_by_user(samples, seed: int, val_fraction: float = 0.2) -> tuple[list[Sample], list[Sample]]:
    """Split samples so that no person appears in both train and validation."""
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction}")
    users = sorted({s.user_id for s in samples})
    if len(users) < 2:
        raise DataError(f"A person split needs at least 2 users, got {len(users)}: {users}")
    random.Random(seed).shuffle(users)
    n_train = min(max(round(len(users) * (1.0 - val_fraction)), 1), len(users) - 1)
    train_users = set(users[:n_train])
    train = [s for s in samples if s.user_id in train_users]
    val = [s for s in samples if s.user_id not in train_users]
    return train, val


def image_name(path: str) -> str:
    """HaGRID's ``<gesture>/<image_id>.jpg`` name of an image, wherever the dataset lives: its path's last
    two parts (split as strings when both are plain names: a million Path objects would cost seconds)."""
    parts = path.rsplit("/", 2)
    if len(parts) == 3 and parts[1] not in ("", ".") and parts[2] not in ("", "."):
        return f"{parts[1]}/{parts[2]}"
    return "/".join(Path(path).parts[-2:])


def samples_to_columns(samples: list[Sample]) -> dict[str, list]:
    """Samples as plain columns, images by name: an index that stays valid when the dataset moves."""
    return {
        "images": [image_name(s.image) for s in samples],
        "boxes": [list(s.box) for s in samples],
        "gestures": [s.gesture for s in samples],
        "leading_hands": [s.leading_hand for s in samples],
        "user_ids": [s.user_id for s in samples],
    }


def samples_from_columns(columns: dict[str, list], dataset_dir) -> list[Sample]:
    """The inverse of `samples_to_columns`, with images under ``dataset_dir`` (a `sources` spec: located
    in its archives or prefix)."""
    if not sources.is_plain_folder(dataset_dir):
        return _located_samples(columns, dataset_dir)
    root = Path(dataset_dir).absolute()
    fields = zip(
        columns["images"],
        columns["boxes"],
        columns["gestures"],
        columns["leading_hands"],
        columns["user_ids"],
        strict=True,
    )
    return [
        Sample(os.path.normpath(root / _plain_name(name)), tuple(box), g, hand, user)
        for name, box, g, hand, user in fields
    ]


def _located_samples(columns: dict[str, list], spec) -> list[Sample]:
    names = [_plain_name(name) for name in columns["images"]]
    listing = sources.dataset_files(spec, sorted({name.split("/")[0] for name in names}))
    fields = zip(names, columns["boxes"], columns["gestures"], columns["leading_hands"], columns["user_ids"],
                 strict=True)  # fmt: skip
    located = {name: listing[name].locator if name in listing else f"{spec}!/{name}" for name in set(names)}
    return [Sample(located[name], tuple(box), g, hand, user) for name, box, g, hand, user in fields]


def _plain_name(name) -> str:
    """A ``<gesture>/<file>`` name as `image_name` writes it; refuses one that would read outside the dataset
    (``..``, an absolute path) or anything else a sample list read from a file might hold."""
    parts = name.split("/") if isinstance(name, str) else []
    if len(parts) != 2 or any(p in ("", ".", "..") or "\\" in p or "\0" in p for p in parts):
        raise DataError(
            f"samples.json: image name {name!r} is not a plain <gesture>/<file> name in the dataset"
        )
    return name
