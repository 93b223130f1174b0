"""Resume references to earlier Prefect flow runs: `prefect://flow-runs/<id>[/last|/best]`.

A flow run's result (its RunSummary) is persisted to result storage (tasks/results.py: the run's S3 bucket, or
local); this reads that result back through the Prefect API, so any machine that can reach the API and the
storage can resume. Runs from before results were persisted resolve through the `<experiment>-checkpoints`
table artifact their persist task published.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from handgesture.errors import CheckpointError

PREFIX = "prefect://flow-runs/"
CHECKPOINTS_ARTIFACT_SUFFIX = "-checkpoints"
KINDS = ("last", "best")


def is_flow_run_ref(uri: str) -> bool:
    return uri.startswith("prefect://")


def checkpoint_rows(run_uri: str, best: str | None, last: str | None) -> list[dict[str, str]]:
    """The rows of the table artifact the persist task publishes."""
    rows = [{"kind": "run", "uri": run_uri}]
    rows += [{"kind": kind, "uri": uri} for kind, uri in (("last", last), ("best", best)) if uri]
    return rows


def resolve_flow_run_ref(uri: str) -> str:
    """The checkpoint URI that flow run recorded: its last checkpoint, or its best with `/best`."""
    flow_run_id, kind = _parse(uri)
    found = _read_result(flow_run_id, uri)
    if found is None:
        found = {row["kind"]: row["uri"] for row in _read_rows(flow_run_id, uri)}
    if not found.get(kind):
        raise CheckpointError(f"resume reference {uri}: the flow run recorded no {kind} checkpoint")
    return found[kind]


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
    (a run from before results were persisted, or one that did not finish)."""
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


def _read_result(flow_run_id: uuid.UUID, uri: str) -> dict[str, str | None] | None:
    """last/best of the flow run's persisted result; None when it has none."""
    summary = read_summary(flow_run_id, uri)
    if summary is None:
        return None
    return {"last": summary.last_checkpoint, "best": summary.best_checkpoint}


def _read_rows(flow_run_id: uuid.UUID, uri: str) -> list[dict[str, str]]:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId, ArtifactFilterKey
    from prefect.exceptions import ObjectNotFound

    with get_client(sync_client=True) as client:
        try:
            client.read_flow_run(flow_run_id)
        except ObjectNotFound:
            raise CheckpointError(
                f"resume reference {uri}: no flow run {flow_run_id} in the Prefect API"
            ) from None
        artifacts = client.read_artifacts(
            artifact_filter=ArtifactFilter(
                flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id]),
                key=ArtifactFilterKey(like_=f"%{CHECKPOINTS_ARTIFACT_SUFFIX}"),
            )
        )
    if not artifacts:
        raise CheckpointError(
            f"resume reference {uri}: flow run {flow_run_id} published no checkpoints artifact (did it reach "
            "its persist task?); resume from its run folder URI instead"
        )
    data = artifacts[0].data
    return json.loads(data) if isinstance(data, str) else data
