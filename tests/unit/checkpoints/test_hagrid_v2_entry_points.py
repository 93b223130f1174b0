"""Every entry point takes a HaGRID v2 snapshot: a run's resume (continue and fine-tune), evaluate, predict
and export (inspect and load_model: test_hagrid_v2_snapshots.py)."""

import json

import pytest
import torch
from handgesture_cli.main import main

from handgesture.data.synthetic import generate_synthetic
from handgesture.labels import HAGRID_V2_TARGETS
from handgesture.training import run_training
from handgesture.training.resume import run_plan
from tests.hagrid_v2 import V2_LR, write_v2_snapshot


@pytest.fixture(scope="module")
def v2_data(tmp_path_factory):
    """HaGRID v2's layout with its 34 targets, two frames of each in train (one in val and test)."""
    root = tmp_path_factory.mktemp("v2-data")
    data = generate_synthetic(
        root, per_class=2, targets=HAGRID_V2_TARGETS, users=4, frame_size=(64, 64), seed=1, test_per_class=1
        , version=2
    )  # fmt: skip
    keys = ("annotations", "val_annotations", "test_annotations", "dataset")
    return [f"dataset.{key}={data[key]}" for key in keys] + [f"dataset.cache_dir={root / 'cache'}"]


@pytest.fixture(scope="module")
def snapshot(tmp_path_factory):
    path = tmp_path_factory.mktemp("v2-snapshot") / "MobileNetV3_small_epoch:0_F1Score:0.5_loss:0.75.pth"
    write_v2_snapshot(path, epochs_run=0, metric=torch.tensor(0.99))
    return path


def own_settings(v2_data, tmp_path, *more: str) -> list[str]:
    loader = ["train_params.num_workers=0", "train_params.train_batch_size=16", "scheduler.warmup_steps=2"]
    return [*v2_data, f"storage.uri={tmp_path / 'runs'}", *loader, *more]


@pytest.mark.slow
def test_a_resumed_run_continues_a_v2_snapshot_by_its_weights(v2_data, snapshot, tmp_path):
    # No model, classes or size given: the continued config takes them from the snapshot's weights.
    overrides = own_settings(v2_data, tmp_path, "train_params.epochs=2", "scheduler.name=ReduceLROnPlateau")
    config, start = run_plan(None, overrides, str(snapshot))
    assert (config.model.name, config.model.full_frame, config.dataset.image_size) == (
        "MobileNetV3_small",
        True,
        [224, 224],
    )
    summary = run_training(config, resume=start, run_name="continued")
    assert [row["epoch"] for row in summary.history] == [2]  # EPOCHS_RUN 0 done; only epoch 2 trains
    assert summary.resumed_from == str(snapshot)
    last = torch.load(summary.last_checkpoint, weights_only=True)
    assert last["progress"]["best_metric"] == pytest.approx(0.99)  # v2's best still stands: not beaten
    # v2's reduced rate went on (a plateau step after one epoch cannot reduce it again: patience 10).
    assert last["optimizer_state_dict"]["param_groups"][0]["lr"] == pytest.approx(V2_LR * 0.1)
    assert last["EPOCHS_RUN"] == 1 and last["MODEL_STATE"].keys() == {
        "hagrid_model." + key for key in last["state_dict"]
    }


@pytest.mark.slow
def test_a_run_fine_tunes_from_a_v2_snapshot_at_its_own_size(v2_data, snapshot, tmp_path):
    targets = f"dataset.targets=[{','.join(HAGRID_V2_TARGETS)}]"
    model = ["model.name=MobileNetV3_small", "model.full_frame=true", "dataset.image_size=[32,32]", targets]
    overrides = own_settings(
        v2_data, tmp_path, *model, "train_params.epochs=1", "checkpoint.resume_mode=finetune"
    )
    config, start = run_plan(None, overrides, str(snapshot))
    summary = run_training(config, resume=start, run_name="tuned")
    assert summary.finetune_skipped == [] and [row["epoch"] for row in summary.history] == [1]


def test_evaluate_scores_a_v2_snapshot(v2_data, snapshot, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["evaluate", str(snapshot), "--out", str(out), "--mistakes", "0", *v2_data]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["split"] == "test" and printed["samples"] == len(HAGRID_V2_TARGETS)


def test_predict_classifies_whole_frames_with_a_v2_snapshot(v2_data, snapshot, capsys):
    frames = v2_data[3].split("=", 1)[1] + "/call"
    assert main(["predict", str(snapshot), frames, "--top-k", "2"]) == 0
    records = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert records and all(record["gesture"] in HAGRID_V2_TARGETS for record in records)


def test_export_packages_a_v2_snapshot_with_its_one_head(snapshot, tmp_path, capsys):
    out = tmp_path / "model.torchscript.pt"
    assert main(["export", str(snapshot), "--format", "torchscript", "--out", str(out)]) == 0
    sidecar = json.loads(out.with_name("model.torchscript.json").read_text())
    assert sidecar["outputs"] == ["gesture"] and sidecar["class_names"] == HAGRID_V2_TARGETS
    assert sidecar["input"]["frame"] == {"letterbox": True, "pad_value": 144}
    weights = tmp_path / "w.pth"
    assert main(["export", str(snapshot), "--format", "weights", "--out", str(weights)]) == 0
    assert "MODEL_STATE" in torch.load(weights, weights_only=True)  # v2's code loads it as it is


def test_a_resume_whose_targets_differ_from_the_snapshots_head_is_refused_before_anything_is_written(
    v2_data, snapshot, tmp_path, prefect_harness, capsys
):
    runs = tmp_path / "runs"
    argv = ["train", "--resume", str(snapshot), "--epochs", "3", f"storage.uri={runs}", *v2_data]
    assert main([*argv, "dataset.targets=[like,dislike]"]) == 2
    [line] = [row for row in capsys.readouterr().err.splitlines() if row.startswith("error: ")]
    assert str(snapshot) in line and "class_names=['like', 'dislike']" in line
    assert not runs.exists()  # refused when the run is planned: no run folder, no prepared data
