"""A resume is resolved once per flow run into a start point: one checkpoint file, opened twice in all
(resolved at the flow's edge, then restored), one Prefect API question for `prefect://`, and the config and
the weights from the same file even when `<experiment>/best` moves in between."""

import json
from collections import Counter
from pathlib import Path

import pytest

import handgesture.checkpoints.locate as locate
from handgesture.checkpoints.best import best_ref, manifest_sha256
from handgesture.promotion import promote_if_better

pytestmark = pytest.mark.slow


@pytest.fixture
def params(tiny_overrides, tmp_path):
    storage = str(tmp_path / "runs")
    overrides = [*tiny_overrides, "train_params.epochs=1"]
    return {"config": "configs/demo.yaml", "overrides": overrides, "storage": storage}


@pytest.fixture
def opened(monkeypatch):
    """How often each checkpoint file was opened (verified and loaded), and how often the API was asked."""
    counts = {"files": Counter(), "api": 0}
    load_named, ask_api = locate._load_named, locate.resolve_flow_run_ref

    def counted_load(*args, **kwargs):
        resolved = load_named(*args, **kwargs)
        counts["files"][resolved.uri] += 1
        return resolved

    def counted_ask(uri):
        counts["api"] += 1
        return ask_api(uri)

    monkeypatch.setattr(locate, "_load_named", counted_load)
    monkeypatch.setattr(locate, "resolve_flow_run_ref", counted_ask)
    return counts


def test_a_prefect_resume_is_resolved_once_and_its_file_opened_twice(prefect_harness, params, opened):
    from flows.evaluate import evaluate_hand_gesture_classifier
    from flows.train import train_hand_gesture_classifier

    state = train_hand_gesture_classifier(**params, return_state=True)
    first = state.result()
    reference = f"prefect://flow-runs/{state.state_details.flow_run_id}"
    opened["files"].clear()

    second = train_hand_gesture_classifier(
        **{**params, "overrides": [*params["overrides"], "train_params.epochs=2"]}, resume=reference
    )
    assert second.resumed_from == first.last_checkpoint and second.epochs == 2
    assert opened["files"] == {first.last_checkpoint: 2}, opened  # the flow's edge, then the restore
    assert opened["api"] == 1

    opened["files"].clear()
    report = evaluate_hand_gesture_classifier(reference, overrides=["dataset.test_annotations=null"])
    assert report.split == "val"
    assert opened["files"] == {first.last_checkpoint: 2} and opened["api"] == 2  # one more: its own run


def test_config_and_weights_come_from_one_checkpoint_when_the_best_moves(
    prefect_harness, params, tiny_config
):
    from flows.train import train_hand_gesture_classifier
    from prefect import flow
    from tasks.load_config import load_config_task
    from tasks.prepare import prepare_data_task
    from tasks.train import train_task

    first = train_hand_gesture_classifier(
        **{**params, "overrides": [*params["overrides"], "optimizer.lr=0.01", "storage.run_name=first"]}
    )
    later = train_hand_gesture_classifier(
        **{**params, "overrides": [*params["overrides"], "optimizer.lr=0.0001", "storage.run_name=later"]}
    )
    config = tiny_config(f"storage.uri={params['storage']}")
    assert promote_if_better(config, first.best_checkpoint).promoted
    best = best_ref(params["storage"], config.storage.experiment)

    @flow
    def resume_while_another_promotion_lands():
        overrides = [*params["overrides"], "train_params.epochs=2"]
        resolved, start = load_config_task(params["config"], overrides, params["storage"], best)
        _point_best_at(later, Path(params["storage"]) / config.storage.experiment)  # between the two
        return resolved, train_task(resolved, prepare_data_task(resolved), start)

    resolved, summary = resume_while_another_promotion_lands()
    assert resolved.optimizer.lr == 0.01  # the recipe of the checkpoint that was best at load-config
    assert summary.resumed_from == first.best_checkpoint  # ... and its weights, not the newly promoted
    assert summary.epochs == 2


def _point_best_at(run, experiment: Path) -> None:
    """What another retrain's promotion writes: best.json naming `run`'s best checkpoint and its sha256."""
    pointer = json.loads((experiment / "best.json").read_text())
    pointer.update(checkpoint=run.best_checkpoint, sha256=manifest_sha256(run.best_checkpoint))
    (experiment / "best.json").write_text(json.dumps(pointer))
