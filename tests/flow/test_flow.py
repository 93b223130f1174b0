"""The Prefect flow end to end through prefect_test_harness: tasks chained, artifacts published."""

import asyncio
import json
from pathlib import Path

import pytest
import torch

from handgesture.config import to_dict
from handgesture.training import RunSummary


@pytest.fixture
def flow_params(tiny_config, tiny_dataset, tmp_path):
    overrides = [
        f"dataset.annotations={tiny_dataset['annotations']}",
        f"dataset.dataset={tiny_dataset['dataset']}",
        f"dataset.cache_dir={tmp_path / 'cache'}",
        "dataset.image_size=[32,32]",
        "model.name=MobileNetV3_small",
        "train_params.epochs=2",
        "train_params.train_batch_size=16",
        "train_params.num_workers=0",
        "storage.experiment=Flow Test",
    ]
    return {"config": "configs/demo.yaml", "overrides": overrides, "storage": str(tmp_path / "runs")}


def test_flow_trains_persists_and_publishes_artifacts(prefect_harness, flow_params, tmp_path):
    from flows.train import train_hand_gesture_classifier

    state = train_hand_gesture_classifier(**flow_params, return_state=True)
    assert state.is_completed(), state.message
    result = state.result()
    assert isinstance(result, RunSummary)
    assert result.epochs == 2
    assert Path(result.best_checkpoint).is_file()
    assert result.run_uri.startswith(flow_params["storage"])
    checkpoint = torch.load(result.last_checkpoint, weights_only=True)
    assert checkpoint["lineage"]["flow_run_id"] == str(state.state_details.flow_run_id)

    artifacts = asyncio.run(_artifacts(state.state_details.flow_run_id))
    by_key = {a.key: a for a in artifacts if a.key}
    assert {"flow-test-report", "flow-test-metrics", "flow-test-progress"} <= set(by_key)
    assert "flow-test-best-checkpoint" not in by_key  # a local path is not a link the UI can follow
    assert result.best_checkpoint in by_key["flow-test-report"].data
    assert len(json.loads(by_key["flow-test-metrics"].data)) == 2
    assert by_key["flow-test-progress"].data == 100.0

    tasks = sorted(asyncio.run(_task_runs(state.state_details.flow_run_id)), key=lambda t: t.start_time)
    names = [t.name.rsplit("-", 1)[0] for t in tasks]  # task run names end in a counter: "train-0"
    assert names == ["load-config", "prepare-data", "train", "persist"], names
    assert all(t.state.is_completed() for t in tasks)
    assert any((tmp_path / "cache").glob("crops-*/index.json"))


def test_flow_resumes_a_prior_run_by_folder(prefect_harness, flow_params):
    from flows.train import train_hand_gesture_classifier

    first = train_hand_gesture_classifier(
        **{**flow_params, "overrides": flow_params["overrides"] + ["train_params.epochs=1"]}
    )
    second = train_hand_gesture_classifier(**flow_params, resume=first.run_uri)
    assert second.resumed_from == first.last_checkpoint
    assert second.epochs == 2


def test_flow_rejects_a_bad_override_before_training(prefect_harness, flow_params):
    from flows.train import train_hand_gesture_classifier

    from handgesture.config import ConfigError

    with pytest.raises(ConfigError, match="train_params.epoch"):
        train_hand_gesture_classifier(**{**flow_params, "overrides": ["train_params.epoch=1"]})


async def _task_runs(flow_run_id):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    async with get_client() as client:
        runs = FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id]))
        return await client.read_task_runs(flow_run_filter=runs)


async def _artifacts(flow_run_id):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    async with get_client() as client:
        return await client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id]))
        )


def test_config_dict_is_plain(tiny_config):
    # What crosses task boundaries must serialise as JSON.
    json.dumps(to_dict(tiny_config()))


@pytest.mark.parametrize(
    ("override", "named"),
    [
        ("dataset.annotations={missing}", "missing-annotations"),
        ("optimizer.lr=-1", "optimizer.lr"),
        ("train_params.epochs=-2", "train_params.epochs"),
        ("optimizer.lr=nan", "optimizer.lr"),
    ],
)
def test_command_line_bad_input_exits_2_naming_it_and_leaves_nothing(
    prefect_harness, flow_params, tmp_path, capsys, override, named
):
    from handgesture_cli.main import main

    override = override.format(missing=tmp_path / "missing-annotations")
    argv = ["--config", "configs/demo.yaml", "--storage", flow_params["storage"], *flow_params["overrides"]]
    assert main(["train", *argv, "synthetic.generate_if_missing=false", override]) == 2
    last_line = capsys.readouterr().err.strip().splitlines()[-1]
    assert last_line.startswith("error: ") and named in last_line
    assert not Path(flow_params["storage"]).exists()  # no partial run folder
