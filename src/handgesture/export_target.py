"""Where `handgesture export` may write, checked before anything is: `--out` is the user's, and a run's files
are not. Never inside a run folder (one holding a run manifest or lease, or below one) or beside an
experiment's best pointer, never under a store record's name, and never over a file already there, unless
`force` is given and it is an export of ours (its sidecar says so and its sha256 matches; a weights file
carries its own mark)."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any, NoReturn

from handgesture.checkpoints.best import POINTER
from handgesture.checkpoints.format import from_bytes
from handgesture.checkpoints.lease import LEASE
from handgesture.checkpoints.run_folder import MANIFEST
from handgesture.errors import CheckpointError, InputError

FORMATS = ("torchscript", "onnx", "weights")
# What our exports carry to say they are ours: the sidecar's field, and the weights file's key.
EXPORTED_BY = "handgesture export"
# A folder holding one of these (each a JSON object with the key named) is a run folder: the manifest from
# the first commit, the lease from the start.
RUN_RECORDS = {MANIFEST: "checkpoints", LEASE: "owner"}
RECORD_BYTES = 2**20  # a larger "record" is not read: it counts as one


class ExportTargetError(InputError):
    """The path to write (or its sidecar) is not one export may write; nothing was written."""


def sidecar_path(out: Path) -> Path:
    sidecar = out.with_suffix(".json")
    if sidecar == out:  # an export named *.json keeps its model; the description goes beside it
        sidecar = out.with_name(out.name + ".json")
    return sidecar


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        for block in iter(lambda: file.read(2**20), b""):
            digest.update(block)
    return digest.hexdigest()


def check_target(out: Path, fmt: str, force: bool = False) -> None:
    """ExportTargetError, naming the path and what was expected, unless `out` (and the sidecar `fmt` has)
    may be written: outside any run folder, not beside a best pointer, not under a store record's name, and
    new, or with `force` an export of ours."""
    out = Path(out)
    paths = [out] if fmt == "weights" else [out, sidecar_path(out)]
    for path in paths:
        if path.name in (*RUN_RECORDS, POINTER):
            _refuse(path, f"{path.name} is the name of a run store's record; expected another file name")
    folder = out.parent.resolve()  # where the bytes land, links followed
    record = next(filter(None, map(_run_record, (folder, *folder.parents))), None)
    if record is not None:
        run = f"{record.parent} ({record.name})"
        _refuse(out, f"it is inside the run folder {run}; expected a path outside it")
    if (folder / POINTER).exists():
        _refuse(out, f"it is beside the best pointer {folder / POINTER}; expected a folder without one")
    existing = [path for path in paths if os.path.lexists(path)]
    if existing and not force:
        _refuse(existing[0], "it exists; expected a new path (or --force, to replace an export of ours)")
    for path in existing:
        if path.is_symlink() or not path.is_file():
            _refuse(path, "it is not a regular file; expected an earlier export of ours to replace")
    if existing:
        _check_ours(out, fmt)


def _refuse(path: Path, why: str) -> NoReturn:
    raise ExportTargetError(f"will not export to {path}: {why}; nothing was written")


def _run_record(folder: Path) -> Path | None:
    """The run manifest or lease `folder` holds, if any: a record that cannot be read counts as one."""
    for name, key in RUN_RECORDS.items():
        path = folder / name
        try:
            if not path.is_file():
                continue
            if path.stat().st_size > RECORD_BYTES:
                return path
            record = json.loads(path.read_bytes())
        except (OSError, ValueError, RecursionError):
            return path
        if isinstance(record, dict) and key in record:
            return path
    return None


def _check_ours(out: Path, fmt: str) -> None:
    """With --force: what is at `out` (and its sidecar) must be an export we wrote, else it is kept."""
    if fmt == "weights":
        if not _is_our_weights(out):
            _refuse(out, f"it is not a weights file written by {EXPORTED_BY}; expected one to replace")
        return
    sidecar = sidecar_path(out)
    if out.exists() and not sidecar.exists():
        _refuse(out, f"it has no sidecar {sidecar.name}, so it is no export of ours; expected one to replace")
    record = _our_sidecar(sidecar)
    if record is None or record.get("file") != out.name:
        _refuse(sidecar, f"it is not the sidecar {EXPORTED_BY} wrote for {out.name}; expected one to replace")
    if out.exists() and record.get("sha256") != sha256_of(out):
        _refuse(out, f"its sha256 is not the one its sidecar {sidecar.name} records; expected our export")


def _our_sidecar(sidecar: Path) -> dict[str, Any] | None:
    try:
        if sidecar.stat().st_size > RECORD_BYTES:
            return None
        record = json.loads(sidecar.read_bytes())
    except (OSError, ValueError, RecursionError):
        return None
    ours = isinstance(record, dict) and record.get("exported_by") == EXPORTED_BY
    return record if ours and record.get("format") in FORMATS else None


def _is_our_weights(path: Path) -> bool:
    try:
        weights = from_bytes(path.read_bytes(), str(path))  # safe: size-checked, weights_only
    except (OSError, CheckpointError):
        return False
    return weights.get("exported_by") == EXPORTED_BY and "optimizer_state_dict" not in weights
