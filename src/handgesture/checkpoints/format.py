"""The checkpoint file format: a self-describing dict of tensors and plain containers, and the JSON records
beside it (run manifest, best pointer).

Files load with `torch.load(weights_only=True)`, so loading never runs pickled code. The tutorial's keys
(`state_dict`, `optimizer_state_dict`, `epoch`, `config`) are kept so its own snippet works on our files.
Before that, the sizes the file's zip members declare are held to what our largest model's checkpoint can
need (`check_member_sizes`): torch allocates and inflates each member at its declared size, so a 1 MB file
could otherwise become a 1 GiB tensor.
What goes into a checkpoint, and how it is restored, is `handgesture.training.state`.
"""

from __future__ import annotations

import functools
import io
import json
import pickle
import zipfile
from typing import Any

import torch

from handgesture.errors import CheckpointError
from handgesture.storage import Store

SCHEMA_VERSION = 2  # 2: HaGRID's module layout, input and leading-hand order (1, our own before it: refused)
SHAPE_FIELDS = ("model_name", "class_names", "image_size", "full_frame")
UNKNOWN_STEP = -1  # a step count a checkpoint does not know (HaGRID's): the run's steps per epoch x epochs
# torch.load reads a file as its zip format exactly when it starts with a zip local header.
ZIP_MAGIC = b"PK\x03\x04"
# Members declaring this much in all cannot hurt, so the architectures' limits (derived in about 0.3 s)
# are only needed above it.
HARMLESS_BYTES = 64 * 2**20
MEMBER_FACTOR = 2  # one member: a tensor, or at most a whole model's tensors flattened into one storage
OPTIMIZER_COPIES = 2  # Adam keeps two moments per parameter (SGD's momentum one)
TOTAL_FACTOR = 1.5  # on top of the largest checkpoint: room for state we have not thought of
LIMIT_CLASSES = 1000  # heads as wide as ImageNet's, far beyond HaGRID's 34 gestures


def to_bytes(checkpoint: dict[str, Any]) -> bytes:
    buffer = io.BytesIO()
    torch.save(checkpoint, buffer)
    return buffer.getvalue()


def from_bytes(data: bytes, source: str) -> dict[str, Any]:
    """Decode with weights_only=True; anything that is not one of our checkpoints is a clear error."""
    check_member_sizes(_declared_sizes(data, source), source)
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
    if not isinstance(checkpoint, dict) or not ({"state_dict", "MODEL_STATE"} & checkpoint.keys()):
        raise CheckpointError(
            f"{source} is not a training checkpoint (expected a dict with 'state_dict', or HaGRID v2's "
            "'MODEL_STATE')"
        )
    return checkpoint


def _declared_sizes(data: bytes, source: str) -> list[tuple[str, int]]:
    """(name, size unpacked) of each member, from the zip's central directory (what torch reads too)."""
    if not data.startswith(ZIP_MAGIC):
        # torch's legacy format has no compression: a storage declaring more bytes than `data` holds fails
        # to read (measured: no memory is touched), so only the zip format can inflate.
        return []
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            return [(info.filename, info.file_size) for info in archive.infolist()]
    except Exception as exc:  # a torn or mangled directory: zipfile raises several kinds
        raise CheckpointError(f"{source} is not a readable checkpoint (torn or corrupt?): {exc!r}") from None


def check_member_sizes(members: list[tuple[str, int]], source: str) -> None:
    """CheckpointError unless each member, and all of them together, declare no more bytes than a checkpoint
    of our largest architecture (with its optimizer's state) could hold."""
    total = sum(size for _, size in members)
    if total <= HARMLESS_BYTES:
        return
    member_limit, total_limit = size_limits()
    for name, size in members:
        if size > member_limit:
            raise CheckpointError(
                f"{source}: member {name!r} unpacks to {size} bytes, over the limit of {member_limit} "
                f"(twice the largest architecture's parameters and buffers); it was not loaded"
            )
    if total > total_limit:
        raise CheckpointError(
            f"{source}: its members unpack to {total} bytes in all, over the limit of {total_limit} "
            f"(the largest architecture's checkpoint with optimizer state, and half again); it was not loaded"
        )


@functools.cache
def size_limits() -> tuple[int, int]:
    """(bytes one member, bytes all members may declare), from every architecture built on the meta device:
    shapes only, no memory."""
    from handgesture.models import architectures, build_model  # models imports torchvision: only when needed

    largest_model = largest_checkpoint = 0
    every = [(name, full_frame) for full_frame in (False, True) for name in architectures(full_frame)]
    for name, full_frame in every:
        with torch.device("meta"):
            model = build_model(name, LIMIT_CLASSES, full_frame=full_frame)
        parameters = sum(_nbytes(p) for p in model.parameters())
        # Every state_dict entry: checkpoints clone each tensor, so ViT's shared encoder is saved twice.
        saved = sum(_nbytes(t) for t in model.state_dict().values())
        largest_model = max(largest_model, parameters + sum(_nbytes(b) for b in model.buffers()))
        largest_checkpoint = max(largest_checkpoint, saved + OPTIMIZER_COPIES * parameters)
    return MEMBER_FACTOR * largest_model, int(TOTAL_FACTOR * largest_checkpoint) + HARMLESS_BYTES


def _nbytes(tensor: torch.Tensor) -> int:
    return tensor.numel() * tensor.element_size()


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
