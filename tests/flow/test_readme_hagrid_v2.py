"""The README's "Coming from HaGRID v2" commands, run as printed with HaGRID v2's own ResNet18.yaml and a
snapshot written as v2's trainer writes it. Only the data folders are swapped for a tiny synthetic v2 layout,
and test-only settings (no loader worker processes, small frames and batches) are appended."""

import json
from pathlib import Path

import pytest
import torch
import torchvision
from handgesture_cli.main import main as handgesture

from handgesture.data.synthetic import generate_synthetic
from handgesture.labels import HAGRID_V2_TARGETS
from tests.commands import train
from tests.hagrid import FIXTURES
from tests.hagrid_v2 import write_v2_snapshot
from tests.readme import commands, substitute

pytestmark = pytest.mark.slow
RELEASE = "/data/hagridv2"
TEST_ONLY = ["train_params.num_workers=0", "train_params.train_batch_size=16"]
SMALL = ["dataset.image_size=[64,64]"]  # a fresh run only: a v2 snapshot's own size (224) is kept


def test_the_hagrid_v2_section_runs_as_printed(prefect_harness, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "hagrid/configs").mkdir(parents=True)
    (tmp_path / "hagrid/configs/ResNet18.yaml").write_text((FIXTURES / "hagrid_v2_resnet18.yaml").read_text())
    data = generate_synthetic(
        tmp_path / "v2", per_class=1, targets=HAGRID_V2_TARGETS, users=3, frame_size=(96, 64), version=2
    )
    release = {f"{RELEASE}/hagrid_annotations/{split}": data[key] for split, key in (
        ("train", "annotations"), ("val", "val_annotations"), ("test", "test_annotations"))}  # fmt: skip
    release[f"{RELEASE}/hagrid_dataset"] = data["dataset"]

    fresh, inspect, resume, evaluate = [substitute(c, release) for c in commands("Your own HaGRID", block=1)]
    first = train(fresh[2:] + TEST_ONLY + SMALL)
    assert first.epochs == 2 and first.stopped_early is None
    state = torch.load(first.best_checkpoint, weights_only=True)["state_dict"]
    torchvision.models.resnet18(num_classes=34).load_state_dict(state, strict=True)  # as the README says

    snapshot = tmp_path / inspect[2]
    write_v2_snapshot(snapshot, "ResNet18", epochs_run=9, metric=0.98)
    capsys.readouterr()
    assert inspect[:2] == ["handgesture", "inspect"] and handgesture(inspect[1:]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert (shown["model_name"], shown["full_frame"], len(shown["class_names"])) == ("ResNet18", True, 34)

    continued = train(resume[2:] + TEST_ONLY)
    assert continued.resumed_from == str(snapshot)
    assert [row["epoch"] for row in continued.history] == [11, 12]  # v2 finished epochs 1-10 (EPOCHS_RUN 9)

    evaluate = [arg.replace("<run>", Path(continued.run_uri).name) for arg in evaluate]
    capsys.readouterr()
    assert evaluate[:2] == ["handgesture", "evaluate"] and handgesture(evaluate[1:]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["split"] == "test" and set(report["fairness"]) >= {"gender", "race", "age"}
