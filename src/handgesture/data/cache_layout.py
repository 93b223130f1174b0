"""The files of a cache folder, as its index lists them.

A cache prepared in one process keeps its rows in one ``crops.bin``. A cache prepared in shards
(:mod:`handgesture.data.shards`) keeps them where each shard wrote them, ``parts/<start>-<stop>/crops.bin``,
and its ``index.json`` lists them in order (``"crops"``); ``rows.npy``'s offsets run over their
concatenation, so readers see one file and nothing is copied. An index without ``"crops"`` is the
one-file layout, so caches prepared before shards existed read as they always did.
"""

from __future__ import annotations

import bisect
import os
import re

SAMPLES, ROWS, CROPS, INDEX = "samples.json", "rows.npy", "crops.bin", "index.json"
PARTS = "parts"
# A part's folder: the half-open sample range it holds. Nothing else may be named as a crops file: an
# index is data from outside (a shared cache), and must not point a reader at other files.
PART_NAME = re.compile(r"^(\d{8})-(\d{8})$")
_PART_CROPS = re.compile(rf"^{PARTS}/(\d{{8}})-(\d{{8}})/{re.escape(CROPS)}$")


def part_name(start: int, stop: int) -> str:
    return f"{start:08d}-{stop:08d}"


def crops_files(index: dict) -> list[str]:
    """The crops files of a cache, in the order rows.npy's offsets run over them; ValueError when the index
    names anything but whole, contiguous parts from sample 0 to its count."""
    listed = index.get("crops") if isinstance(index, dict) else None
    if listed is None:
        return [CROPS]
    if not isinstance(listed, list) or not listed:
        raise ValueError(f"index crops must be a list of part files, got {type(listed).__name__}")
    expected_start = 0
    for name in listed:
        found = _PART_CROPS.match(name) if isinstance(name, str) else None
        if not found or int(found.group(1)) != expected_start or int(found.group(2)) <= expected_start:
            raise ValueError(f"index crops: {str(name)[:80]!r} is not the part after sample {expected_start}")
        expected_start = int(found.group(2))
    if expected_start != index.get("count"):
        raise ValueError(f"index crops end at sample {expected_start}, not at its count {index.get('count')}")
    return list(listed)


def data_files(index: dict) -> list[str]:
    """Every file of a cache besides its index: what is hashed, shared and counted."""
    return [*crops_files(index), ROWS, SAMPLES]


class CropsReader:
    """Reads ``(offset, length)`` over the concatenation of a cache's crops files, as one file. Files are
    opened lazily, once per process (a loader worker's own descriptors, never a parent's)."""

    def __init__(self, paths: list[str], sizes: list[int]):
        self.paths = list(paths)
        self.starts = [sum(sizes[:i]) for i in range(len(sizes))]
        self._fds: tuple[int, list[int | None]] | None = None  # (pid, a descriptor per file)

    def __getstate__(self):
        return {**self.__dict__, "_fds": None}

    def read(self, offset: int, length: int) -> bytes:
        if self._fds is None or self._fds[0] != os.getpid():
            self._fds = (os.getpid(), [None] * len(self.paths))
        part = bisect.bisect_right(self.starts, offset) - 1  # a row never spans two parts
        fds = self._fds[1]
        if fds[part] is None:
            fds[part] = os.open(self.paths[part], os.O_RDONLY)
        return os.pread(fds[part], length, offset - self.starts[part])
