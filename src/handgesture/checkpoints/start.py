"""A run's start point, resolved once: what a `resume` URI names, pinned to one file's bytes.

A resume request can name a moving target: `<experiment>/best` follows a pointer another run may move,
`prefect://flow-runs/<id>` asks the API, a run folder means its newest checkpoint. A flow resolves the
request once, at its edge, into a `StartPoint` (a concrete checkpoint file and its sha256) and hands that
value to every step after it. So the config a run continues and the weights it loads come from the same
file, and the file is opened twice in all: once here, once when the state is restored (`open_start`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from handgesture.checkpoint_config import checkpoint_config
from handgesture.checkpoints.locate import Resolved, resolve_checkpoint
from handgesture.storage import S3Settings

Mode = Literal["continue", "finetune", "evaluate"]


@dataclass(frozen=True)
class StartPoint:
    """Where a run starts: never a `prefect://` or `<experiment>/best` reference, always one file."""

    request: str  # what was asked for (the resume parameter): recorded in the run's manifest
    uri: str  # the checkpoint file it resolved to
    sha256: str  # the bytes that file must have when the run opens it again
    mode: Mode  # continue: the full training state; finetune: the weights that fit; evaluate: the model
    config: dict[str, Any]  # the checkpoint's recipe (`checkpoint_config`): what a continued run takes


def resolve_start(request: str, mode: Mode, s3: S3Settings | None = None) -> tuple[StartPoint, Resolved]:
    """The start point `request` names, and the checkpoint as opened to find it (for a caller that needs
    its contents now, such as an evaluation in the same process)."""
    resolved = resolve_checkpoint(request, s3)
    start = StartPoint(
        request=request,
        uri=resolved.uri,
        sha256=resolved.sha256,
        mode=mode,
        config=checkpoint_config(resolved.checkpoint, resolved.uri),
    )
    return start, resolved


def best_start(pointer: dict[str, Any]) -> StartPoint:
    """A fine-tune from the checkpoint an experiment's best pointer names (`best.read_best`), pinned to the
    sha256 the pointer records. Nothing is opened until the run restores from it, and its recipe is not
    read: a fine-tune keeps the run's own."""
    checkpoint = pointer["checkpoint"]
    return StartPoint(checkpoint, checkpoint, pointer["sha256"], mode="finetune", config={})


def open_start(start: StartPoint, s3: S3Settings | None = None) -> Resolved:
    """The start point's checkpoint, refused unless its bytes are still the ones resolved at the edge."""
    return resolve_checkpoint(start.uri, s3, sha256=start.sha256, pinned_by=f"resume {start.request}")
