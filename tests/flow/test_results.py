"""Flow results are persisted, and `prefect://flow-runs/<id>` reads them back through the Prefect API; a run
from before results were persisted still resolves through its checkpoints artifact."""

import asyncio

import pytest

from handgesture.checkpoints.prefect_refs import resolve_flow_run_ref
from handgesture.training import RunSummary
from tests.tiny import tiny_dotlist

pytestmark = pytest.mark.slow


@pytest.fixture
def params(tiny_dataset, tmp_path):
    overrides = [*tiny_dotlist(tiny_dataset), "train_params.epochs=1", "tracking.tensorboard=false"]
    return {"config": "configs/demo.yaml", "overrides": overrides, "storage": str(tmp_path / "runs")}


async def _read_flow_run(flow_run_id):
    from prefect.client.orchestration import get_client

    async with get_client() as client:
        return await client.read_flow_run(flow_run_id)


async def _delete_checkpoints_artifact(flow_run_id):
    """The artifact a reference resolved through before results were persisted (not the result's own)."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId, ArtifactFilterKey

    async with get_client() as client:
        found = await client.read_artifacts(
            artifact_filter=ArtifactFilter(
                flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id]),
                key=ArtifactFilterKey(like_="%-checkpoints"),
            )
        )
        assert len(found) == 1
        for artifact in found:
            await client.delete_artifact(artifact.id)


def test_the_flow_result_is_persisted_and_resolves_a_reference_without_artifacts(prefect_harness, params):
    from flows.train import train_hand_gesture_classifier

    state = train_hand_gesture_classifier(**params, return_state=True)
    flow_run_id = state.state_details.flow_run_id
    stored = asyncio.run(_read_flow_run(flow_run_id)).state
    persisted = stored.result(_sync=True)  # read back from result storage, not from this process's memory
    assert isinstance(persisted, RunSummary) and persisted == state.result()
    asyncio.run(_delete_checkpoints_artifact(flow_run_id))
    assert resolve_flow_run_ref(f"prefect://flow-runs/{flow_run_id}") == persisted.last_checkpoint
    assert resolve_flow_run_ref(f"prefect://flow-runs/{flow_run_id}/best") == persisted.best_checkpoint


def test_a_run_without_a_persisted_result_resolves_through_its_artifact(prefect_harness, params):
    from flows.train import train_hand_gesture_classifier

    unpersisted = train_hand_gesture_classifier.with_options(persist_result=False)
    state = unpersisted(**params, return_state=True)
    flow_run_id = state.state_details.flow_run_id
    assert resolve_flow_run_ref(f"prefect://flow-runs/{flow_run_id}") == state.result().last_checkpoint
