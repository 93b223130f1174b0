"""A crop cache's contents checked against what this run computed itself.

The index's sha256 sums only prove that a cache is self-consistent: whoever can write a shared cache can
also rewrite its index. So before a cache is used, its settings and samples must equal this run's own (from
our annotations and config: the key is our digest of them), and its row table must point inside crops.bin.
Crop pixels cannot be checked without cutting them again; labels, boxes and image names can, and are.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from handgesture.data.annotations import Sample, samples_to_columns
from handgesture.data.cache_layout import crops_files

ROW_FIELDS = 6  # offset, length, frame_w, frame_h, row side, level held


def check_contents(folder: Path, index: dict, settings: dict, samples: list[Sample]) -> None:
    """Raise ValueError (saying what differs) unless ``folder`` holds exactly ``samples`` cut with
    ``settings`` (a CacheSettings as a dict)."""
    if not isinstance(index, dict) or index.get("settings") != settings:
        got = index.get("settings") if isinstance(index, dict) else index
        raise ValueError(f"index settings {_short(got)} are not this run's {settings}")
    _check_counts(index, len(samples))
    ours = json.loads(json.dumps(samples_to_columns(samples)))  # lists and floats, as JSON reads them back
    theirs = json.loads((folder / "samples.json").read_text())
    if theirs != ours:
        raise ValueError(
            f"samples.json differs from the samples of our own annotations ({_first_diff(theirs, ours)})"
        )
    rows = np.load(folder / "rows.npy", allow_pickle=False)
    crops_size = sum((folder / name).stat().st_size for name in crops_files(index))  # parts: one file
    _check_rows(rows, len(samples), settings["levels"], crops_size)
    if int((rows[:, 0, 1] == 0).sum()) != index["unreadable"]:
        raise ValueError("the index's unreadable count does not match rows.npy")


def _check_counts(index: dict, count: int) -> None:
    if index.get("count") != count:
        raise ValueError(f"index count {_short(index.get('count'))} is not this run's {count} samples")
    for key in ("unreadable", "missing_images"):
        value = index.get(key)
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise ValueError(f"index {key} must be a count (an int >= 0), got {_short(value)}")
    notes = index.get("notes")
    if not isinstance(notes, list) or not all(isinstance(note, str) for note in notes):
        raise ValueError(f"index notes must be a list of strings, got {_short(notes)}")


def _check_rows(rows: np.ndarray, count: int, levels: int, crops_size: int) -> None:
    """Every row's bytes inside crops.bin, at a real level, with a real frame and side when readable."""
    if rows.dtype != np.int64 or rows.shape != (count, levels, ROW_FIELDS):
        raise ValueError(
            f"rows.npy must be int64 [{count}, {levels}, {ROW_FIELDS}], got {rows.dtype} {list(rows.shape)}"
        )
    offset, length, frame_w, frame_h, side, held = np.moveaxis(rows, -1, 0)
    readable = length > 0
    bad = (offset < 0) | (length < 0) | (offset > crops_size - length) | (held < 0) | (held >= levels)
    bad |= readable & ((frame_w <= 0) | (frame_h <= 0) | (side <= 0))
    if bad.any():
        sample = int(np.argwhere(bad)[0][0])
        raise ValueError(f"rows.npy: sample {sample}'s row {rows[sample].tolist()} is outside crops.bin")


def _first_diff(theirs, ours) -> str:
    if not isinstance(theirs, dict) or sorted(theirs) != sorted(ours):
        return f"columns {_short(sorted(theirs) if isinstance(theirs, dict) else theirs)}"
    for column, values in ours.items():
        other = theirs[column]
        if not isinstance(other, list) or len(other) != len(values):
            return f"{column}: {_short(other)}"
        for i, (a, b) in enumerate(zip(other, values, strict=True)):
            if a != b:
                return f"{column}[{i}] is {_short(a)}, expected {_short(b)}"
    return "same values"


def _short(value) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."
