"""The checkpoint file format: a self-describing dict of tensors and plain containers, and the JSON records
beside it (run manifest, best pointer).

Files load with `torch.load(weights_only=True)`, so loading never runs pickled code. The tutorial's keys
(`state_dict`, `optimizer_state_dict`, `epoch`, `config`) are kept so its own snippet works on our files.
What goes into a checkpoint, and how it is restored, is `handgesture.training.state`.
"""

from __future__ import annotations

import io
import json
import pickle
from typing import Any

import torch

from handgesture.errors import CheckpointError
from handgesture.storage import Store

SCHEMA_VERSION = 2  # 2: HaGRID's module layout, input and leading-hand order (1: our own, before)
SHAPE_FIELDS = ("model_name", "class_names", "image_size")


def to_bytes(checkpoint: dict[str, Any]) -> bytes:
    buffer = io.BytesIO()
    torch.save(checkpoint, buffer)
    return buffer.getvalue()


def from_bytes(data: bytes, source: str) -> dict[str, Any]:
    """Decode with weights_only=True; anything that is not one of our checkpoints is a clear error."""
    try:
        checkpoint = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        if "Weights only load failed" not in str(exc):
            raise CheckpointError(f"{source} is not a readable checkpoint: {exc}") from None
        # The safe unpickler met a global it does not allow: code that a plain torch.load would have run.
        reason = str(exc).strip().splitlines()[-1][:300]
        raise CheckpointError(
            f"{source} was refused by the safe loader (weights_only=True): it holds objects other than "
            f"tensors and plain containers ({reason})"
        ) from None
    except Exception as exc:  # truncated zip, bad magic number, garbage bytes: torch raises many kinds
        raise CheckpointError(f"{source} is not a readable checkpoint (torn or corrupt?): {exc!r}") from None
    if not isinstance(checkpoint, dict) or "state_dict" not in checkpoint:
        raise CheckpointError(f"{source} is not a training checkpoint (expected a dict with 'state_dict')")
    return checkpoint


def check_compatible(checkpoint: dict[str, Any], expected: dict[str, Any], source: str) -> None:
    """Shape-defining fields come from the checkpoint; a conflict with the config names both values."""
    for key in SHAPE_FIELDS:
        found = checkpoint.get(key)
        if found is not None and found != expected[key]:
            raise CheckpointError(
                f"{source} was trained with {key}={found!r} but the config asks for {key}={expected[key]!r}; "
                f"set the config to match the checkpoint or start a new run"
            )


def read_record(store: Store, key: str, what: str, required: str, kind: type) -> dict[str, Any] | None:
    """A JSON object stored at `key` (None when absent) that must hold `required` of type `kind`."""
    if not store.exists(key):
        return None
    uri = store.uri(key)
    try:
        record = json.loads(store.get_bytes(key))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"{what} {uri} is not valid JSON: {exc}") from None
    if not isinstance(record, dict) or not isinstance(record.get(required), kind):
        raise CheckpointError(f"{what} {uri} has no {required!r} {kind.__name__}")
    return record


def write_record(record: dict[str, Any]) -> bytes:
    return json.dumps(record, indent=2).encode()
