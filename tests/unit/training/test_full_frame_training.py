"""`model.full_frame=true` end to end on v2's synthetic layout: trained from the frame cache alone (the
source frames moved away after the prepare step), validated, checkpointed, resumed exactly, evaluated."""

import json
import math
import shutil
from pathlib import Path

import pytest

from handgesture.config import load_config
from handgesture.data.prepare import prepare_data
from handgesture.data.synthetic import generate_synthetic
from handgesture.evaluation import evaluate_checkpoint
from handgesture.report import render_evaluation, render_report
from handgesture.training import run_training
from tests.unit.training.test_resume import _manifest, assert_identical, final_state

pytestmark = pytest.mark.slow
TARGETS = ["hand_heart", "like", "no_gesture"]
BOX = [0.1, 0.1, 0.2, 0.2]


@pytest.fixture(scope="module")
def v2_data(tmp_path_factory):
    root = tmp_path_factory.mktemp("full-frame")
    data = generate_synthetic(root / "v2", per_class=6, targets=TARGETS, users=3, frame_size=(96, 64),
                              seed=4, version=2)  # fmt: skip
    return root, data


def _config(root: Path, data: dict, *overrides: str):
    return load_config("configs/demo.yaml", [
        f"dataset.annotations={data['annotations']}", f"dataset.dataset={data['dataset']}",
        f"dataset.val_annotations={data['val_annotations']}",
        f"dataset.test_annotations={data['test_annotations']}", f"dataset.cache_dir={root / 'cache'}",
        "dataset.targets=[hand_heart,like,no_gesture]", "dataset.image_size=[32,32]",
        "model.name=MobileNetV3_small", "model.full_frame=true", "train_params.epochs=2",
        "train_params.train_batch_size=4", "train_params.num_workers=0", f"storage.uri={root / 'runs'}",
        "checkpoint.every_n_steps=2", "checkpoint.keep_last=100", "synthetic.generate_if_missing=false",
        *overrides,
    ])  # fmt: skip


def test_full_frame_training_reads_frame_caches_resumes_exactly_and_evaluates(v2_data):
    root, data = v2_data
    config = _config(root, data)
    prepared = prepare_data(config)
    assert all(Path(split.cache).name.startswith("frames-") for split in prepared.splits.values())
    assert prepared.splits["train"].samples == 18  # one per image: 6 images of each of 3 targets
    frames, away = Path(data["dataset"]), root / "moved-away"
    shutil.move(frames, away)  # every epoch, validation and test read the frame caches alone
    try:
        straight = run_training(config, run_name="straight", prepared=prepared)
        entries = _manifest(straight)["checkpoints"]
        mid_epoch = next(e for e in entries if e["epoch"] == 1 and e["position"] > 0)
        resumed = run_training(config, run_name="resumed", resume=mid_epoch["uri"], prepared=prepared)
        report = evaluate_checkpoint(straight.last_checkpoint, config, root / "eval", prepared=prepared)
    finally:
        shutil.move(away, frames)
    assert straight.skipped_images == 0 and math.isfinite(straight.metrics["train/loss"])
    assert_identical(final_state(straight.last_checkpoint), final_state(resumed.last_checkpoint))
    assert resumed.history == straight.history
    assert 0.0 <= straight.metrics["test/gesture/f1_score"] <= 1.0
    assert not [key for key in straight.metrics if "leading_hand" in key]  # one head: nothing to show
    assert "leading_hand" not in render_report(straight, "MobileNetV3_small")
    assert report.split == "test" and report.samples == 3 and list(report.weighted) == ["gesture"]
    assert "leading_hand" not in render_evaluation(report)
    _predicts_whole_frames(straight.last_checkpoint, Path(data["dataset"]) / "like", root)


def _predicts_whole_frames(checkpoint: str, folder: Path, root: Path) -> None:
    """One record per image, the whole frame letterboxed as evaluation saw it; boxes are ignored, and the
    command says so; no leading hand."""
    import contextlib
    import io

    from handgesture_cli.main import main

    boxes = root / "boxes.json"
    boxes.write_text(json.dumps({p.stem: {"bboxes": [BOX, BOX]} for p in folder.glob("*.jpg")}))
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        assert main(["predict", checkpoint, str(folder), "--boxes", str(boxes), "--device", "cpu"]) == 0
    records = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [r["image"] for r in records] == sorted(str(p) for p in folder.glob("*.jpg"))
    assert all(r["box"] is None and "leading_hand" not in r and r["gesture"] in TARGETS for r in records)
    assert "ignored: a full-frame model classifies each whole image" in err.getvalue()
