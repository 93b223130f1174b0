"""`handgesture evaluate` on HaGRID v2's layout: gesture F1 per gender, race and age band in report.json, the
markdown report and the printed summary; nothing of it on data without `meta`."""

import json
from collections import Counter

import pytest
from handgesture_cli.main import main

from handgesture.config import load_config
from handgesture.data.annotations import image_name, read_annotations
from handgesture.data.people import ATTRIBUTES, read_meta
from handgesture.data.synthetic import generate_synthetic
from handgesture.evaluation import evaluate_checkpoint, evaluation_plan
from handgesture.report import render_evaluation

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def v2_data(tmp_path_factory):
    """v2's layout with the classes trained_run's model knows (HaGRID v1's, all in v2 too)."""
    root = tmp_path_factory.mktemp("fair-v2")
    return generate_synthetic(
        root / "data", per_class=1, users=4, frame_size=(160, 120), seed=9, test_per_class=2, version=2
    )


def _v2_overrides(data: dict) -> list[str]:
    keys = ("annotations", "val_annotations", "test_annotations", "dataset")
    return [*(f"dataset.{key}={data[key]}" for key in keys), "dataset.cache_dir=null"]


def _counts(samples, meta) -> dict[str, Counter]:
    """Per attribute, samples per group, as the rule gives them (one person per synthetic frame)."""
    from handgesture.data.people import groups_of

    groups = [groups_of(meta.get(image_name(s.image))) for s in samples]
    return {a: Counter(g[a] for g in groups) for a in ATTRIBUTES}


def _unreadable_image_that_order_would_misattribute(samples, meta) -> str:
    """An image whose samples, left out, change the groups' counts otherwise than dropping the split's last
    samples would (what matching predictions by order instead of index gives)."""
    for image in dict.fromkeys(s.image for s in samples):
        kept = [s for s in samples if s.image != image]
        if _counts(kept, meta) != _counts(samples[: len(kept)], meta):
            return image
    raise AssertionError("no image tells index from order apart: change the synthetic seed")


def test_evaluate_reports_f1_per_group_with_an_unreadable_image_left_out(
    trained_run, v2_data, tmp_path, capsys
):
    summary, _ = trained_run
    config = load_config("configs/demo.yaml", _v2_overrides(v2_data))
    samples = read_annotations(
        v2_data["test_annotations"], v2_data["dataset"], config.dataset.targets
    ).samples
    meta = read_meta(v2_data["test_annotations"], [s.image for s in samples])
    broken = _unreadable_image_that_order_would_misattribute(samples, meta)
    with open(broken, "wb") as fh:
        fh.write(b"not a jpeg")

    out = tmp_path / "out"
    assert main(["evaluate", summary.best_checkpoint, "--out", str(out), *_v2_overrides(v2_data)]) == 0
    printed = json.loads(capsys.readouterr().out)
    written = json.loads((out / "report.json").read_text())

    kept = [s for s in samples if s.image != broken]
    assert written["skipped_images"] == len(samples) - len(kept) > 0  # one per hand of the image
    assert written["samples"] == written["fairness"]["samples"] == len(kept)
    for attribute, expected in _counts(kept, meta).items():
        scores = written["fairness"]["attributes"][attribute]
        assert {row["group"]: row["count"] for row in scores["groups"]} == expected
        assert scores["unattributed"] == 0  # one person per synthetic frame
        f1 = {row["group"]: row["f1_score"] for row in scores["groups"]}
        if len(f1) > 1:
            gap = scores["gap"]
            assert gap["f1_score"] == pytest.approx(max(f1.values()) - min(f1.values()))
            assert f1[gap["highest"]] - f1[gap["lowest"]] == pytest.approx(gap["f1_score"])
        groups = printed["fairness"][attribute]["groups"]
        assert {g: count for g, (count, _) in groups.items()} == expected
    assert len(written["fairness"]["attributes"]["gender"]["groups"]) == 2  # the seed gives both


def test_the_person_splits_groups_come_from_the_training_annotations_in_a_markdown_table(
    trained_run, v2_data, tmp_path
):
    summary, _ = trained_run
    person_split = [*_v2_overrides(v2_data), "dataset.val_annotations=null"]  # val: train's people, split
    config, start = evaluation_plan(summary.best_checkpoint, None, person_split)
    report = evaluate_checkpoint(start, config, tmp_path, split="val", mistakes=0)
    text = render_evaluation(report)
    for attribute in ATTRIBUTES:
        assert f"### {attribute}\n\n| group | count | F1 |" in text
    assert text.count("widest gap") == 3
    assert sum(row["count"] for row in report.fairness["attributes"]["race"]["groups"]) == report.samples > 0


def test_without_meta_there_is_no_fairness_section_anywhere(trained_run, tmp_path, capsys):
    summary, _ = trained_run  # HaGRID v1's layout: no meta
    assert main(["evaluate", summary.best_checkpoint, "--out", str(tmp_path), "--mistakes", "0"]) == 0
    assert "fairness" not in json.loads(capsys.readouterr().out)
    assert "fairness" not in json.loads((tmp_path / "report.json").read_text())
    config, start = evaluation_plan(summary.best_checkpoint, None, [])
    report = evaluate_checkpoint(start, config, tmp_path / "again", mistakes=0)
    assert report.fairness is None and "by group" not in render_evaluation(report)
