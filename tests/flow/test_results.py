"""Flow results are persisted, and `prefect://flow-runs/<id>` reads them back through the Prefect API; a run
without a persisted result is one error naming the reference."""

import asyncio

import pytest

from handgesture.checkpoints.prefect_refs import resolve_flow_run_ref
from handgesture.errors import CheckpointError
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


def test_the_flow_result_is_persisted_and_resolves_a_reference(prefect_harness, params):
    from flows.train import train_hand_gesture_classifier

    state = train_hand_gesture_classifier(**params, return_state=True)
    flow_run_id = state.state_details.flow_run_id
    stored = asyncio.run(_read_flow_run(flow_run_id)).state
    persisted = stored.result(_sync=True)  # read back from result storage, not from this process's memory
    assert isinstance(persisted, RunSummary) and persisted == state.result()
    assert resolve_flow_run_ref(f"prefect://flow-runs/{flow_run_id}") == persisted.last_checkpoint
    assert resolve_flow_run_ref(f"prefect://flow-runs/{flow_run_id}/best") == persisted.best_checkpoint


def test_a_run_without_a_persisted_result_is_one_error_naming_the_reference(prefect_harness, params):
    from flows.train import train_hand_gesture_classifier

    unpersisted = train_hand_gesture_classifier.with_options(persist_result=False)
    state = unpersisted(**params, return_state=True)
    ref = f"prefect://flow-runs/{state.state_details.flow_run_id}"
    expected = f"^resume reference {ref}: flow run .* has no readable result \\(expected a completed"
    with pytest.raises(CheckpointError, match=expected):
        resolve_flow_run_ref(ref)
