"""A gesture file in a plain folder, read into samples: its entries typed by `entry_json.decode_plain` when
the file is as HaGRID writes it (nearly always; the per-entry checks then ran in C), then each image stat-ed
and its samples built. `annotations` reads any other file by its checked path (each entry checked in Python).
"""

from __future__ import annotations

import os
import stat
from array import array
from pathlib import Path

from msgspec import UNSET

from handgesture.data.entry_json import PlainEntry, decode_plain
from handgesture.data.index_samples import box_samples, frame_sample
from handgesture.errors import DataError
from handgesture.labels import HAND_INDEX, UNKNOWN_HAND


def plain_id(image_id: str) -> bool:
    """An id with no separator, no ``..`` and no NUL: it names a file right in its gesture folder, so the
    path needs no normalising (the index builds a million)."""
    return (
        bool(image_id) and "/" not in image_id and "\\" not in image_id and ".." not in image_id
        and "\0" not in image_id
    )  # fmt: skip


def plain_entries(data: bytes, subset: int) -> tuple[list[str], list[PlainEntry]] | None:
    """The file's image ids (sorted; the first ``subset``) and their entries, when every entry is as HaGRID
    writes it and every id is plain; None otherwise, left to the checked path and its messages."""
    decoded = decode_plain(data)
    if decoded is None:
        return None
    ids = sorted(decoded)
    ids = ids[:subset] if subset > 0 else ids
    # Every id at once, in C: a separator cannot join two ids into a "..", and an empty id is a key.
    joined = "\n".join(ids)
    if "" in decoded or "/" in joined or "\\" in joined or ".." in joined or "\0" in joined:
        return None
    return ids, [decoded[image_id] for image_id in ids]


def plain_samples(
    ids, entries, gesture_dir: Path, path: Path, index: dict[str, int], tally, full_frame: bool
):
    """The samples of the entries whose images are there, and each sample's image size (counting the rest
    as missing). Every entry was checked first: an image is stat-ed only once its file is known good."""
    samples, sizes, prefix = [], array("q"), f"{os.path.normpath(gesture_dir)}{os.sep}"
    dataset_root, where, folder = os.path.realpath(gesture_dir.parent), str(path), gesture_dir.name
    for image_id, entry in zip(ids, entries, strict=True):
        image = f"{prefix}{image_id}.jpg"
        size = image_size(image, dataset_root, path, image_id)
        if size < 0:
            tally.missing += 1
            continue
        if full_frame:
            found = frame_sample(image, folder, entry.labels, entry.user_id, index, tally)
        else:
            found = box_samples(
                image, entry.pairs(), _HANDS[entry.leading_hand], entry.user_id, index, tally, where
            )
        if len(found) == 1:
            samples.append(found[0])
            sizes.append(size)
        else:
            samples += found
            sizes.extend([size] * len(found))
    return samples, sizes


_HANDS = {**HAND_INDEX, UNSET: UNKNOWN_HAND}  # a v2 entry has no leading hand


def image_size(image: str, dataset_root: str, path: Path, image_id: str) -> int:
    """The image's size in bytes, -1 when it is not there; a symlink out of the dataset folder is refused
    like an escaping id (naming the annotation file ``path`` and the image)."""
    try:
        found = os.lstat(image)
    except OSError:
        return -1
    if found.st_mode & _TYPE == stat.S_IFREG:  # nearly every image
        return found.st_size
    if stat.S_ISLNK(found.st_mode):
        if not os.path.realpath(image).startswith(dataset_root + os.sep):
            raise DataError(
                f"{path}, image {image_id!r}: image {image} is a symlink out of the dataset folder "
                f"{dataset_root}"
            )
        return os.stat(image).st_size if os.path.isfile(image) else -1
    return -1


_TYPE = 0o170000  # stat.S_IFMT's mask, applied inline
