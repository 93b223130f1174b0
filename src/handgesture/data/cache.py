"""A crop cache: each sample's hand region, cut once from its full frame, so epochs never decode frames.

Sample ``i`` has one row per level: concentric squares around its box, at the scales of
:func:`~handgesture.data.geometry.level_scales` (``levels`` equal ratios ``r`` from 1 to ``max_scale``), each
zero-padded outside the frame, exactly ``crop_square(frame, square_crop_box(box, W, H, scale))``, and shrunk
to ``side`` x ``side`` when larger (never enlarged: a smaller square is kept as cut). ``side`` defaults to
``r x image_size``, the resolution training needs: a crop at a level's smallest scale still has
``image_size`` cached pixels. A crop is taken from the smallest level that holds it
(:mod:`handgesture.data.cached_dataset`). Two levels cost the pixels of one (2 x (sqrt(2) s)^2 = (2 s)^2) but
halve what a crop decodes and resamples: that is what makes compact JPEG rows fast (BENCHMARKS.md). Inside a
level kept as cut, inner levels would add bytes and no detail, so they share its row.

Layout of ``<cache_dir>/crops-<key>/``: ``crops.bin`` (rows back to back, interleaved RGB: raw uint8
[side, side, 3], or JPEG at ``quality``), ``rows.npy`` (int64 [N, levels, 6]: offset, length, frame_w,
frame_h, row side, the level whose square the row holds; length 0 = the image was unreadable),
``samples.json`` (the samples themselves, images by name, so a
prepared cache opens without reading the annotations again) and ``index.json`` (written last: key, settings,
counts, sizes and sha256 of the other files). The key digests the settings, the annotation files (name and
bytes) and every sample with its image's ``<gesture>/<file>`` name and byte size; no absolute paths or mtimes,
so a copy of the dataset on another machine has the same key and can use a cache prepared elsewhere
(:mod:`handgesture.data.cache_share`).

A frame cache (`model.full_frame=true`) is the same machinery with one row per image: the whole frame
letterboxed to ``frame_size`` (`data.full_frames`), so an epoch never decodes a full-HD JPEG again. Its
folder is ``frames-<key>`` and its settings (hence its key) hold ``frame_size``, so a crop cache and a frame
cache of the same data are never confused; a crop cache's settings omit it, as before frame caches existed,
so crop caches prepared before stay valid.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from handgesture.data import sources
from handgesture.data.annotations import Sample, samples_from_columns, samples_to_columns
from handgesture.data.cache_build import write_rows
from handgesture.data.cache_check import check_contents
from handgesture.data.cache_layout import data_files
from handgesture.data.cached_dataset import CachedCropDataset, CachedFrameDataset
from handgesture.data.geometry import MAX_CROP_SCALE, level_scales
from handgesture.data.key_lines import key_chunks
from handgesture.errors import DataError
from handgesture.storage import sha256_file
from handgesture.storage.local import folder_lock

log = logging.getLogger(__name__)

# 3: rows interleaved (H, W, C), so PIL resamples them without a copy; 4: samples.json; 5: levels
FORMAT_VERSION = 5
FORMATS = ("raw", "jpeg")
# The defaults: compact (about 46 KiB per hand at 224 px) and >= 10x HaGRID's per-sample path (BENCHMARKS.md).
DEFAULT_FORMAT, DEFAULT_QUALITY, DEFAULT_LEVELS = "jpeg", 90, 2
SAMPLES = "samples.json"
DATA_FILES = ("crops.bin", "rows.npy", SAMPLES)
INDEX = "index.json"

# Folders verified in this process: (folder, key) -> the files' sizes and mtimes then. The prepare task and
# the train task run in one process; hashing a large cache once per run is enough unless a file changed.
# Like git's "racily clean" rule: a file written within the last seconds may change again without its
# mtime moving (coarse timestamps), so such a folder is not remembered.
_verified: dict[tuple[str, str], tuple] = {}
_RACY_NS = 3 * 10**9


@dataclass(frozen=True)
class CacheSettings:
    side: int
    max_scale: float
    fmt: str
    quality: int
    levels: int = 1  # an index from before levels (version 4) held one
    version: int = FORMAT_VERSION
    frame_size: tuple[int, int] | None = None  # a frame cache: [H, W] of its letterboxed frames

    def __post_init__(self):
        if self.frame_size is not None:  # index.json gives a list back
            object.__setattr__(self, "frame_size", (int(self.frame_size[0]), int(self.frame_size[1])))

    @property
    def full_frame(self) -> bool:
        return self.frame_size is not None

    @property
    def kind(self) -> str:
        """What the rows hold: the folder's prefix, and the word logs and errors use."""
        return "frames" if self.full_frame else "crops"

    @property
    def scales(self) -> list[float]:
        return level_scales(self.max_scale, self.levels)

    def stored(self) -> dict:
        """The settings as index.json holds them (JSON's lists) and the key digests them; a crop cache's
        without ``frame_size``, so its key is what it was before frame caches existed."""
        settings = json.loads(json.dumps(asdict(self)))
        if self.frame_size is None:
            del settings["frame_size"]
        return settings


def cache_key(samples, settings: CacheSettings, annotation_files=(), targets=(), sizes=()) -> str:
    """sha256 of everything the rows and the index depend on; images by name and byte size (a stat, not a
    read, or the reader's ``sizes``: `AnnotationSet.sizes`; in archives and on S3, `sources.identity`: CRC-32
    or ETag, and size). The targets count too: a target with no samples changes no row, but it does change
    the notes."""
    h = hashlib.sha256(json.dumps(settings.stored(), sort_keys=True).encode())
    h.update(json.dumps(list(targets)).encode())
    for name, content in sources.key_parts(annotation_files):
        h.update(f"\0ann\0{name}\0".encode())
        h.update(content)
    for chunk in key_chunks(samples, sizes):  # per sample: its name, box, labels, person, image size
        h.update(chunk)
    return h.hexdigest()


# What a damaged or forged cache raises while it is checked (a deeply nested JSON file: RecursionError).
CHECK_ERRORS = (OSError, ValueError, KeyError, TypeError, IndexError, RecursionError)


def check_folder(folder: Path, key: str, settings: CacheSettings | None = None, samples=None) -> dict:
    """The folder's index when it is complete and matches ``key``; raises one of CHECK_ERRORS otherwise.

    With ``settings`` and ``samples``, its contents must also be exactly this run's (the index's sha256 and
    key only show that it is self-consistent): see :mod:`handgesture.data.cache_check`.
    """
    index = json.loads((folder / INDEX).read_text())
    files = data_files(index)  # one crops.bin, or the parts a sharded prepare wrote
    stamp = tuple((st.st_size, st.st_mtime_ns) for st in (os.stat(folder / n) for n in (INDEX, *files)))
    if _verified.get((str(folder), key)) != stamp:
        for name in files:
            expected, path = index["files"][name], folder / name
            if path.stat().st_size != expected["size"] or sha256_file(path) != expected["sha256"]:
                raise ValueError(f"{name} does not match the index (truncated or modified)")
        if index["key"] != key:
            raise ValueError("index key does not match the folder's dataset and settings (stale)")
    if samples is not None:
        check_contents(folder, index, settings.stored(), list(samples))
    if time.time_ns() - max(mtime for _, mtime in stamp) > _RACY_NS:
        _verified[(str(folder), key)] = stamp
    return index


def verify_folder(folder: Path, key: str, settings: CacheSettings | None = None, samples=None) -> dict | None:
    """:func:`check_folder`, or None (and why, logged) when the folder is unusable."""
    try:
        return check_folder(folder, key, settings, samples)
    except CHECK_ERRORS as exc:
        if folder.exists():
            log.warning("Cache %s is unusable (%s); rebuilding it", folder, exc)
        return None


@dataclass
class CropCache:
    folder: Path
    key: str
    samples: list[Sample]
    image_size: tuple[int, int]
    settings: CacheSettings
    rows: np.ndarray  # int64 [N, levels, 6]: offset, length, frame_w, frame_h, row side, level held
    unreadable: int
    missing_images: int  # annotated images that were not on disk when the samples were read
    origin: str  # "reused", "downloaded", "prepared" or "opened"
    notes: list[str]  # what reading the annotations skipped besides missing images
    crops: list[str] = field(default_factory=lambda: ["crops.bin"])  # its crops files, in offset order

    def dataset(self, samples: list[Sample] | None = None, train: bool = False) -> CachedCropDataset:
        kind = CachedFrameDataset if self.settings.full_frame else CachedCropDataset
        return kind(self, self.samples if samples is None else samples, train)

    @property
    def files(self) -> list[str]:
        return [*self.crops, "rows.npy", SAMPLES]

    def summary(self) -> dict:
        return {
            "folder": str(self.folder),
            "key": self.key,
            "samples": len(self.samples),
            "missing_images": self.missing_images,
            "notes": self.notes,
            "unreadable": self.unreadable,
            "origin": self.origin,
            "bytes": sum((self.folder / name).stat().st_size for name in self.files),
        }


def cache_settings(
    image_size,
    max_scale=MAX_CROP_SCALE,
    side=None,
    fmt=DEFAULT_FORMAT,
    quality=DEFAULT_QUALITY,
    levels=DEFAULT_LEVELS,
    full_frame: bool = False,
) -> CacheSettings:
    size = (int(image_size[0]), int(image_size[1]))
    if full_frame:  # one row per image, the letterboxed frame: no scales, no levels
        max_scale, side, levels = 1.0, max(size), 1
    if fmt not in FORMATS or max_scale < 1.0 or min(size) <= 0 or not 1 <= quality <= 100 or levels < 1:
        raise ValueError(
            f"crop cache needs fmt in {FORMATS}, max_scale >= 1, image_size > 0, quality in 1..100 and "
            f"levels >= 1; got fmt={fmt!r}, max_scale={max_scale}, image_size={size}, quality={quality}, "
            f"levels={levels}"
        )
    ratio = max_scale ** (1 / levels)  # between one level's scales
    return CacheSettings(
        int(side or round(ratio * max(size))),
        float(max_scale),
        fmt,
        int(quality),
        int(levels),
        frame_size=size if full_frame else None,
    )


def prepare_cache(
    samples,
    image_size,
    cache_dir,
    *,
    max_scale: float = MAX_CROP_SCALE,
    side: int | None = None,
    fmt: str = DEFAULT_FORMAT,
    quality: int = DEFAULT_QUALITY,
    levels: int = DEFAULT_LEVELS,
    workers: int = 0,
    annotation_files=(),
    missing_images: int = 0,
    notes: list[str] = (),
    targets=(),
    share=None,
    full_frame: bool = False,
    sizes=(),
) -> CropCache:
    """Build (once) or reuse the crop cache of ``samples`` under ``cache_dir`` (with ``full_frame``: their
    frame cache, ``levels`` aside); see the module docstring.

    ``workers`` > 0 decodes frames in that many processes. ``share`` (a :class:`CacheShare`) is where
    prepared caches are shared between machines: fetched from it before preparing, published to it after.
    ``sizes``: the samples' image sizes as read (`AnnotationSet.sizes`), so the key stats no image again.
    """
    samples = list(samples)
    settings = cache_settings(image_size, max_scale, side, fmt, quality, levels, full_frame)
    key = cache_key(samples, settings, annotation_files, targets, sizes)
    folder = Path(cache_dir) / f"{settings.kind}-{key[:24]}"
    folder.parent.mkdir(parents=True, exist_ok=True)
    with folder_lock(folder.parent):  # two preparers of one cache: one builds, the other then reuses it
        index, origin = verify_folder(folder, key, settings, samples), "reused"
        if index is None and share is not None:
            index, origin = share.fetch(folder, key, settings, samples), "downloaded"
        if index is None:
            check_space(folder, estimated_size(len(samples), settings), settings)
            index, origin = _build(samples, settings, key, folder, workers, missing_images, notes), "prepared"
    if share is not None and origin != "downloaded":
        share.publish(folder)
    if index["unreadable"]:
        log.warning("Cache %s: %d unreadable samples will be skipped", folder, index["unreadable"])
    return _loaded(folder, key, index, samples, image_size, origin)


def finished_cache(folder: Path, key: str, settings, samples, image_size, share=None) -> CropCache:
    """A cache whose files were written by others (a sharded prepare's parts, then assembled): checked against
    this run's settings and samples like any cache found on disk, and published to ``share``."""
    index = verify_folder(folder, key, settings, samples)
    if index is None:
        raise RuntimeError(f"{settings.kind} cache {folder} failed its own check right after being assembled")
    if share is not None:
        share.publish(folder)
    return _loaded(folder, key, index, samples, image_size, "prepared")


def open_cache(folder, key: str, image_size, dataset_dir) -> CropCache:
    """A cache prepared earlier (by the prepare-data step), opened by folder and key: its samples come from
    the cache itself, so nothing is read from the annotations or keyed again."""
    folder = Path(folder)
    index = verify_folder(folder, key)
    if index is None:
        raise DataError(
            f"prepared cache {folder} is missing or does not verify against key {key[:24]}; "
            "prepare the data again (handgesture prepare, or the prepare-data task)"
        )
    samples = samples_from_columns(json.loads((folder / SAMPLES).read_text()), dataset_dir)
    return _loaded(folder, key, index, samples, image_size, "opened")


def _loaded(folder: Path, key: str, index: dict, samples, image_size, origin: str) -> CropCache:
    size = (int(image_size[0]), int(image_size[1]))
    settings = CacheSettings(**index["settings"])
    rows = np.load(folder / "rows.npy")
    unreadable, missing, notes = int(index["unreadable"]), int(index["missing_images"]), list(index["notes"])
    crops = data_files(index)[:-2]
    return CropCache(
        folder, key, list(samples), size, settings, rows, unreadable, missing, origin, notes, crops
    )


# A JPEG row is about 12x smaller than a raw one on HaGRID-like frames (BENCHMARKS.md); 6x is the estimate's
# safe side. Raw rows are at most side x side x 3 bytes (a smaller hand's row is kept as cut, not enlarged).
JPEG_RATIO_ESTIMATE = 6
SPACE_MARGIN = 0.1  # of the estimate, and at least MIN_FREE_AFTER, stays free after the cache is written
MIN_FREE_AFTER = 256 * 2**20


class CacheWontFitError(DataError):
    """The crop cache would not fit on its filesystem: nothing was written."""


def estimated_size(count: int, settings: CacheSettings) -> int:
    """An upper estimate of a cache's bytes: every row at full side (most are), plus the tables."""
    row = settings.side * settings.side * 3
    if settings.fmt == "jpeg":
        row //= JPEG_RATIO_ESTIMATE
    # rows.npy: 6 int64 per row; samples.json: about 200 bytes per sample
    return count * (settings.levels * (row + 6 * 8) + 200)


def check_space(folder: Path, needed: int, settings: CacheSettings) -> None:
    """Refuse, before writing anything, a cache that would not leave a margin free on its filesystem."""
    free = shutil.disk_usage(folder.parent).free
    margin = max(int(needed * SPACE_MARGIN), MIN_FREE_AFTER)
    if needed + margin > free:
        compact = (
            "dataset.cache_format=jpeg (about 12x smaller than raw)"
            if settings.fmt == "raw"
            else f"a lower dataset.cache_quality (now {settings.quality})"
        )
        raise CacheWontFitError(
            f"the cache {folder} needs about {_gib(needed)} (and {_gib(margin)} to spare), but its "
            f"filesystem has {_gib(free)} free: set {compact}, dataset.cache_dir to a larger disk, or "
            "dataset.cache_dir=null to decode frames each epoch"
        )


def _gib(size: int) -> str:
    return f"{size / 2**30:.2f} GiB"


def _build(
    samples, settings: CacheSettings, key: str, folder: Path, workers: int, missing: int, notes
) -> dict:
    """Write the cache into a temp folder next to ``folder``, then rename it into place."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}-", dir=folder.parent))
    try:
        log.info("Preparing the %s cache of %d samples in %s", settings.kind, len(samples), folder)
        unreadable = write_rows(samples, settings, tmp, workers)
        (tmp / SAMPLES).write_text(json.dumps(samples_to_columns(samples)))
        index = {"key": key, "settings": settings.stored(), "count": len(samples), "unreadable": unreadable}
        index["missing_images"], index["notes"] = missing, list(notes)
        index["files"] = {name: _file_entry(tmp / name) for name in DATA_FILES}
        (tmp / INDEX).write_text(json.dumps(index, indent=1))
        shutil.rmtree(folder, ignore_errors=True)
        os.replace(tmp, folder)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    index = verify_folder(folder, key)
    if index is None:
        raise RuntimeError(f"crop cache {folder} failed its own check right after being written")
    return index


def _file_entry(path: Path) -> dict:
    return {"size": path.stat().st_size, "sha256": sha256_file(path)}
