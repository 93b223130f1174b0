"""A large plain folder's gesture files read in two processes: this one reads the first files, a forked child
(`index_fork`) the others, and the two are joined in file order. Samples, sizes, tally, warnings and errors
are exactly what one process reading every file gives: reading is Python and msgspec holding the GIL, so a
second core needs a second process (v2's train split: 1.3 GB of JSON, 10 s in one).
"""

from __future__ import annotations

import functools
import logging
import os
from array import array
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import msgspec

from handgesture.data.index_fork import Forked
from handgesture.data.index_samples import Sample, Tally

log = logging.getLogger(__name__)

# Below this many bytes of JSON the files are read here alone: a fork and the join cost tens of
# milliseconds, about what 30 MB take to read (tests lower it to read small folders in two).
FORK_MIN_BYTES = 32 * 2**20

# (annotation file, its images' folder, tally) -> the file's samples and their images' sizes
ReadFile = Callable[[Path, Path, Tally], tuple[list[Sample], array]]
Warn = Callable[[Path, Tally], None]  # logs what the tally holds about one annotation file


class _Part(msgspec.Struct):
    """What the child read, as it crosses the pipe: msgpack of the Structs themselves, the sizes' bytes."""

    samples: list[Sample]
    sizes: bytes
    missing: int
    bad_boxes: dict[str, int]
    unknown_labels: dict[str, int]
    no_gesture_only: int
    untargeted: dict[str, int]


def read_files(files: dict[Path, Path], read_file: ReadFile, warn: Warn) -> tuple[list, array, Tally]:
    """``read_file`` of each annotation file in ``files`` (-> its images' folder), in order: their samples,
    sizes and tally, each file's warnings logged after it (``warn``). In two processes when worth it."""
    paths, tally = list(files), Tally()
    nbytes = [_file_bytes(path) for path in paths]
    if len(paths) < 2 or not _worth_forking(sum(nbytes)):
        return *_read_group(files, paths, read_file, tally, warn), tally
    cut = _balanced_cut(nbytes)
    first, second = paths[:cut], paths[cut:]
    try:
        child = Forked(functools.partial(_read_encoded, files, second, read_file))
    except OSError:  # no second process to be had: all of them here
        return *_read_group(files, paths, read_file, tally, warn), tally
    try:
        samples, sizes = _read_group(files, first, read_file, tally, warn)
    except BaseException:  # the first failing file in file order wins: this one
        child.kill()
        raise
    part = _decoded(child.result(), child.pid)
    if part is None:  # it raised or died: read its files here, as one process would (their error included)
        found, found_sizes = _read_group(files, second, read_file, tally, warn)
    else:
        found, found_sizes = part.samples, array("q", part.sizes)
        tally.merge(_tally(part))
        for path in second:
            warn(path, tally)
    samples += found
    sizes += found_sizes
    return samples, sizes, tally


def _read_group(
    files: dict[Path, Path], paths: list[Path], read_file: ReadFile, tally: Tally, warn: Warn | None
):
    samples, sizes = [], array("q")
    for path in paths:
        found, found_sizes = read_file(path, files[path], tally)
        if warn is not None:
            warn(path, tally)
        samples += found
        sizes += found_sizes
    return samples, sizes


def _worth_forking(total_bytes: int) -> bool:
    return total_bytes > FORK_MIN_BYTES and hasattr(os, "fork") and _usable_cores() >= 2


def _usable_cores() -> int:
    """The cores this process may run on (not the machine's: a container or taskset may allow one)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1


def _file_bytes(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:  # reading it fails with the message it always did
        return 0


def _balanced_cut(nbytes: list[int]) -> int:
    """Where to cut the files into two contiguous, non-empty groups of bytes as equal as can be."""
    total, best, best_cut, before = sum(nbytes), None, 1, 0
    for cut in range(1, len(nbytes)):
        before += nbytes[cut - 1]
        larger = max(before, total - before)
        if best is None or larger < best:
            best, best_cut = larger, cut
    return best_cut


def _read_encoded(files: dict[Path, Path], paths: list[Path], read_file: ReadFile) -> bytes:
    """The child's work: its files read and the result encoded; it logs nothing (the parent logs its
    warnings, in file order, once it has the result)."""
    tally = Tally()
    samples, sizes = _read_group(files, paths, read_file, tally, warn=None)
    part = _Part(
        samples,
        sizes.tobytes(),
        tally.missing,
        tally.bad_boxes,
        tally.unknown_labels,
        tally.no_gesture_only,
        tally.untargeted,
    )
    return msgspec.msgpack.encode(part)


def _decoded(payload, pid: int) -> _Part | None:
    if payload is None:
        log.debug("The process %d reading half the annotation files failed; reading them here", pid)
        return None
    try:
        part = msgspec.msgpack.decode(payload, type=_Part)
    except msgspec.DecodeError:
        log.debug("The result of process %d is unreadable; reading its annotation files here", pid)
        return None
    ok = len(part.sizes) == 8 * len(part.samples)
    return part if ok else None


def _tally(part: _Part) -> Tally:
    return Tally(
        part.missing,
        Counter(part.bad_boxes),
        Counter(part.unknown_labels),
        part.no_gesture_only,
        Counter(part.untargeted),
    )
