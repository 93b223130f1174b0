"""`handgesture evaluate`: the metrics training logged, per class and weighted, with pictures and a report."""

import json

import pytest
import torch
from handgesture_cli.main import main
from PIL import Image

from handgesture.config import load_config
from handgesture.data.annotations import read_annotations
from handgesture.data.loaders import build_val_batches
from handgesture.data.prepare import prepare_data
from handgesture.errors import ConfigError
from handgesture.evaluation import ModelDoesNotFitError, evaluate_checkpoint, evaluation_plan, per_class
from handgesture.promotion import evaluate_checkpoints

pytestmark = pytest.mark.slow


def test_the_report_holds_the_test_metrics_training_logged(trained_run, tmp_path):
    summary, _ = trained_run
    config, start = evaluation_plan(summary.best_checkpoint, None, [])  # the checkpoint's own data and split
    report = evaluate_checkpoint(start, config, tmp_path / "eval")

    assert report.split == "test" and report.notes == []
    for name, value in report.weighted["gesture"].items():
        assert value == pytest.approx(summary.metrics[f"test/gesture/{name}"], abs=1e-6)
    assert report.samples == sum(row["support"] for row in report.per_class["gesture"]) > 0
    written = json.loads((tmp_path / "eval" / "report.json").read_text())
    assert written["weighted"] == report.weighted and written["checkpoint"] == summary.best_checkpoint
    for key in ("gesture_confusion_matrix", "leading_hand_confusion_matrix", "mistakes"):
        with Image.open(report.files[key]) as image:
            assert image.width > 100 and image.height > 100


def test_per_class_rows_weigh_up_to_the_weighted_scores_of_the_same_pass(trained_run, tmp_path):
    summary, _ = trained_run
    report = evaluate_checkpoint(
        summary.best_checkpoint, evaluation_plan(summary.best_checkpoint, None, [])[0], tmp_path
    )
    for head in ("gesture", "leading_hand"):
        rows = report.per_class[head]
        total = sum(row["support"] for row in rows)
        for name in ("precision", "recall", "f1_score"):
            weighted = sum(row[name] * row["support"] for row in rows) / total
            assert weighted == pytest.approx(report.weighted[head][name], abs=1e-5), (head, name)
        assert report.weighted[head]["accuracy"] == pytest.approx(report.weighted[head]["recall"], abs=1e-5)


def test_mistakes_are_the_most_confident_wrong_answers_and_name_their_hands(trained_run, tmp_path):
    summary, overrides = trained_run
    config, _ = evaluation_plan(summary.best_checkpoint, None, [])
    report = evaluate_checkpoint(summary.best_checkpoint, config, tmp_path, mistakes=5)
    assert 0 < len(report.mistakes) <= 5
    probabilities = [m["probability"] for m in report.mistakes]
    assert probabilities == sorted(probabilities, reverse=True)
    samples = read_annotations(
        config.dataset.test_annotations, config.dataset.dataset, config.dataset.targets
    )
    by_hand = {(s.image, tuple(s.box)): config.dataset.targets[s.gesture] for s in samples.samples}
    for mistake in report.mistakes:
        assert mistake["true"] != mistake["predicted"]
        assert by_hand[mistake["image"], tuple(mistake["box"])] == mistake["true"]
    wrong = sum(row["support"] - round(row["recall"] * row["support"]) for row in report.per_class["gesture"])
    assert len(report.mistakes) == min(5, wrong)


def test_the_validation_split_scores_as_in_training_and_in_promotion(trained_run, tmp_path):
    summary, _ = trained_run
    config, _ = evaluation_plan(summary.best_checkpoint, None, [])
    report = evaluate_checkpoint(summary.best_checkpoint, config, tmp_path, split="val")
    assert report.weighted["gesture"]["f1_score"] == pytest.approx(summary.best_metric, abs=1e-6)
    prepared = prepare_data(config)
    splits = {"val": build_val_batches(config, torch.device("cpu"), prepared)}
    promoted = evaluate_checkpoints(config, [summary.best_checkpoint], splits, None)
    assert promoted[summary.best_checkpoint]["val"] == pytest.approx(report.weighted["gesture"]["f1_score"])


def test_without_a_test_split_the_default_is_validation_and_asking_for_test_is_an_error(
    trained_run, tmp_path
):
    summary, _ = trained_run
    config, _ = evaluation_plan(summary.best_checkpoint, None, ["dataset.test_annotations=null"])
    report = evaluate_checkpoint(summary.best_checkpoint, config, tmp_path)
    assert report.split == "val" and "no test split" in report.notes[0]
    with pytest.raises(ConfigError, match="dataset.test_annotations"):
        evaluate_checkpoint(summary.best_checkpoint, config, tmp_path, split="test")


def test_data_of_other_classes_is_refused_naming_both(trained_run, tmp_path):
    summary, overrides = trained_run
    config = load_config("configs/demo.yaml", [*overrides, "dataset.targets=[call,fist]"])
    with pytest.raises(ModelDoesNotFitError, match=r"classes .*call.*fist"):
        evaluate_checkpoint(summary.best_checkpoint, config, tmp_path)


def test_per_class_from_a_confusion_matrix():
    rows = per_class([[3, 1], [0, 0]], ["a", "b"])
    assert rows[0] == {
        "class": "a",
        "precision": 1.0,
        "recall": 0.75,
        "f1_score": pytest.approx(6 / 7),
        "support": 4,
    }
    assert rows[1] == {"class": "b", "precision": 0.0, "recall": 0.0, "f1_score": 0.0, "support": 0}


def test_the_evaluate_command_prints_the_summary_and_writes_the_report(trained_run, tmp_path, capsys):
    summary, _ = trained_run
    assert main(["evaluate", summary.best_checkpoint, "--out", str(tmp_path / "out"), "--mistakes", "3"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["split"] == "test" and printed["files"]["report"] == str(tmp_path / "out" / "report.json")
    # Printed for people, at 4 digits; report.json keeps every digit.
    shown = printed["weighted"]["gesture"]["f1_score"]
    assert shown == round(shown, 4) and shown == pytest.approx(
        summary.metrics["test/gesture/f1_score"], abs=1e-4
    )
    written = json.loads((tmp_path / "out" / "report.json").read_text())
    assert written["weighted"]["gesture"]["f1_score"] == pytest.approx(
        summary.metrics["test/gesture/f1_score"]
    )


def test_the_evaluate_command_reports_bad_input_with_status_2(trained_run, tmp_path, capsys):
    summary, _ = trained_run
    assert main(["evaluate", str(tmp_path / "missing.pth")]) == 2
    assert "missing.pth" in capsys.readouterr().err
    assert (
        main(["evaluate", summary.best_checkpoint, "--split", "test", "dataset.test_annotations=null"]) == 2
    )
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "dataset.test_annotations" in err
