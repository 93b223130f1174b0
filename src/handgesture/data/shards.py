"""A cache prepared in shards: each shard cuts the rows of one range of samples into its own part folder,
``<cache>/parts/<start>-<stop>/`` (``crops.bin``, ``rows.npy``, and ``part.json`` written last), on whichever
process or Dask worker runs it; when every part is there, :func:`assemble_parts` writes the cache's own
``rows.npy`` (offsets over the parts, in order), ``samples.json`` and ``index.json``, and readers see one
cache (:mod:`handgesture.data.cache_layout`). No row is copied.

A part is keyed by the cache's key and its range (``part.json``), so a retried shard, or a prepare run again
after a lost worker, keeps every part that finished and verifies, and redoes only the rest.
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from handgesture.data.annotations import Sample, samples_to_columns
from handgesture.data.cache_build import write_rows
from handgesture.data.cache_layout import CROPS, INDEX, PARTS, ROWS, SAMPLES, part_name
from handgesture.errors import DataError
from handgesture.storage import sha256_file

log = logging.getLogger(__name__)

PART_INDEX = "part.json"
# Big enough that a shard's fixed costs (a task run, a part's files) vanish against decoding its frames
# (about 20 s of one core at HaGRID's frame sizes), small enough that a lost worker costs little.
DEFAULT_SHARD_SIZE = 2048


def shard_ranges(count: int, shard_size: int, workers: int = 1) -> list[tuple[int, int]]:
    """Half-open sample ranges: at most ``shard_size`` samples each, and at least ``workers`` shards when
    there are that many samples, so no worker idles. The same inputs always give the same ranges (parts are
    found again by range)."""
    if count <= 0:
        return []
    size = max(1, min(shard_size, math.ceil(count / max(1, workers))))
    return [(start, min(start + size, count)) for start in range(0, count, size)]


@dataclass(frozen=True)
class Shard:
    """One part's work: small and picklable (it travels to a Dask worker), no credentials."""

    folder: str  # the cache folder the part goes under
    key: str  # the cache's key
    settings: object  # CacheSettings
    start: int
    stop: int
    samples: tuple[Sample, ...]

    @property
    def part(self) -> Path:
        return Path(self.folder) / PARTS / part_name(self.start, self.stop)


def build_part(shard: Shard) -> dict:
    """Write the shard's part, unless a verified one is there already; returns its part.json."""
    found = finished_part(shard.part, shard.key, shard.start, shard.stop)
    if found is not None:
        log.info("Part %s of cache %s is already prepared; kept", shard.part.name, shard.key[:24])
        return found
    shard.part.parent.mkdir(parents=True, exist_ok=True)
    # A temp folder renamed into place: a worker killed mid-shard leaves no part that looks finished.
    tmp = Path(tempfile.mkdtemp(prefix=f".{shard.part.name}-", dir=shard.part.parent))
    try:
        unreadable = write_rows(list(shard.samples), shard.settings, tmp, workers=0)
        info = {"key": shard.key, "start": shard.start, "stop": shard.stop, "unreadable": unreadable}
        info["files"] = {name: _file_entry(tmp / name) for name in (CROPS, ROWS)}
        (tmp / PART_INDEX).write_text(json.dumps(info, indent=1))
        shutil.rmtree(shard.part, ignore_errors=True)
        os.replace(tmp, shard.part)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return info


def finished_part(part: Path, key: str, start: int, stop: int) -> dict | None:
    """The part's part.json when the part is complete, of this cache and range, and its files match it."""
    try:
        info = json.loads((part / PART_INDEX).read_text())
        if (info["key"], info["start"], info["stop"]) != (key, start, stop):
            return None
        for name in (CROPS, ROWS):
            if _file_entry(part / name) != info["files"][name]:
                return None
        return info
    except (OSError, ValueError, KeyError, TypeError):
        return None


def assemble_parts(
    folder: Path, key: str, settings, samples: list[Sample], ranges, missing: int, notes
) -> dict:
    """The cache's rows.npy, samples.json and (last) index.json over its finished parts; DataError naming
    the first part that is missing or does not verify (nothing is written then)."""
    infos = []
    for start, stop in ranges:
        info = finished_part(folder / PARTS / part_name(start, stop), key, start, stop)
        if info is None:
            raise DataError(f"cache {folder}: part {part_name(start, stop)} is missing or incomplete")
        infos.append(info)
    (folder / INDEX).unlink(missing_ok=True)  # the cache is incomplete until its new index is written
    tables, offset = [], 0
    for (start, stop), info in zip(ranges, infos, strict=True):
        rows = np.load(folder / PARTS / part_name(start, stop) / ROWS)
        rows[..., 0] += offset  # offsets over the parts' concatenation
        tables.append(rows)
        offset += info["files"][CROPS]["size"]
    levels = settings.levels
    np.save(folder / ROWS, np.concatenate(tables) if tables else np.zeros((0, levels, 6), np.int64))
    (folder / SAMPLES).write_text(json.dumps(samples_to_columns(samples)))
    crops = [f"{PARTS}/{part_name(start, stop)}/{CROPS}" for start, stop in ranges]
    index = {"key": key, "settings": settings.stored(), "count": len(samples), "crops": crops}
    index["unreadable"] = sum(info["unreadable"] for info in infos)
    index["missing_images"], index["notes"] = missing, list(notes)
    index["files"] = {name: info["files"][CROPS] for name, info in zip(crops, infos, strict=True)}
    index["files"].update({name: _file_entry(folder / name) for name in (ROWS, SAMPLES)})
    tmp = folder / f".{INDEX}.tmp"
    tmp.write_text(json.dumps(index, indent=1))
    os.replace(tmp, folder / INDEX)
    return index


def _file_entry(path: Path) -> dict:
    return {"size": path.stat().st_size, "sha256": sha256_file(path)}
