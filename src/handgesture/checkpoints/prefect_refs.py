"""Resume references to earlier Prefect flow runs: `prefect://flow-runs/<id>[/last|/best]`.

A flow run's result (its RunSummary) is persisted to result storage (tasks/results.py: the run's S3 bucket, or
local); this reads that result back through the Prefect API, so any machine that can reach the API and the
storage can resume. A flow run without a readable result (one that did not complete, or whose result was not
persisted) is an error naming the reference.
"""

from __future__ import annotations

import uuid
from typing import Any

from handgesture.errors import CheckpointError

PREFIX = "prefect://flow-runs/"
KINDS = ("last", "best")


def is_flow_run_ref(uri: str) -> bool:
    return uri.startswith("prefect://")


def resolve_flow_run_ref(uri: str) -> str:
    """The checkpoint URI that flow run recorded: its last checkpoint, or its best with `/best`."""
    flow_run_id, kind = _parse(uri)
    summary = read_summary(flow_run_id, uri)
    if summary is None:
        raise CheckpointError(
            f"resume reference {uri}: flow run {flow_run_id} has no readable result (expected a completed "
            "train or retrain flow run whose result was persisted where this machine can read it); resume "
            "from its run folder URI instead"
        )
    found = summary.best_checkpoint if kind == "best" else summary.last_checkpoint
    if not found:
        raise CheckpointError(f"resume reference {uri}: the flow run recorded no {kind} checkpoint")
    return found


def _parse(uri: str) -> tuple[uuid.UUID, str]:
    if not uri.startswith(PREFIX):
        raise CheckpointError(f"resume reference {uri!r}: expected {PREFIX}<flow-run-id>[/last|/best]")
    run_id, _, kind = uri.removeprefix(PREFIX).strip("/").partition("/")
    kind = kind or "last"
    try:
        parsed = uuid.UUID(run_id)
    except ValueError:
        raise CheckpointError(f"resume reference {uri!r}: {run_id!r} is not a flow run id (a UUID)") from None
    if kind not in KINDS:
        raise CheckpointError(f"resume reference {uri!r}: expected /last or /best after the id, got /{kind}")
    return parsed, kind


def read_summary(flow_run_id: uuid.UUID | str, uri: str | None = None) -> Any | None:
    """The RunSummary a completed flow run persisted (a retrain's: the run it trained); None when it has none
    (a run whose result was not persisted, or one that did not complete)."""
    from prefect.client.orchestration import get_client
    from prefect.exceptions import ObjectNotFound

    with get_client(sync_client=True) as client:
        try:
            state = client.read_flow_run(uuid.UUID(str(flow_run_id))).state
        except ObjectNotFound:
            raise CheckpointError(
                f"resume reference {uri or PREFIX + str(flow_run_id)}: no flow run {flow_run_id} in the "
                "Prefect API"
            ) from None
    if state is None or not state.is_completed():
        return None
    try:
        result = state.result(raise_on_failure=False, _sync=True)
    except Exception:  # no persisted result (MissingResult), or storage this machine cannot read
        return None
    summary = getattr(result, "run", result)  # a retrain's result holds the run it trained
    return summary if hasattr(summary, "last_checkpoint") else None
