"""`handgesture predict`: each hand box (or the whole image) to a gesture and leading hand, as JSON lines."""

import json
import shutil
from pathlib import Path

import pytest
import torch
from handgesture_cli.main import main
from PIL import Image

from handgesture.data.annotations import read_annotations
from handgesture.data.dataset import HandCropDataset
from handgesture.errors import DataError
from handgesture.inference import load_model
from handgesture.labels import LEADING_HANDS
from handgesture.models import preprocess
from handgesture.prediction import Target, image_paths, predict, read_boxes, targets_of

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def model(trained_run):
    return load_model(trained_run[0].best_checkpoint)


@pytest.fixture(scope="module")
def test_split(trained_run, model):
    """The trained run's test annotations folder, its images folder and its samples."""
    overrides = dict(item.split("=", 1) for item in trained_run[1])
    folder, images = overrides["dataset.test_annotations"], overrides["dataset.dataset"]
    return folder, images, read_annotations(folder, images, model.class_names).samples


def test_predictions_on_hagrid_boxes_are_the_evaluation_crops_predictions(model, test_split):
    folder, _, samples = test_split
    boxes = {}
    for path in sorted(Path(folder).glob("*.json")):
        boxes.update(read_boxes(path))
    targets = targets_of(sorted({Path(s.image) for s in samples}), boxes)
    records = list(predict(model, targets, device=torch.device("cpu"), batch_size=7, top_k=3))
    by_hand = {(r["image"], tuple(r["box"])): r for r in records}
    assert len(by_hand) == len(records) == len(samples)

    crops = HandCropDataset(samples, tuple(model.image_size), train=False)  # what evaluation crops
    with torch.inference_mode():
        logits = model.model(preprocess(torch.stack([crops[i]["image"] for i in range(len(samples))])))
    gestures, hands = logits["gesture"].softmax(1), logits["leading_hand"].softmax(1)
    for i, sample in enumerate(samples):
        record = by_hand[sample.image, tuple(sample.box)]
        assert record["gesture"] == model.class_names[int(gestures[i].argmax())]
        assert record["gesture_probability"] == pytest.approx(float(gestures[i].max()), abs=1e-5)
        assert record["leading_hand"] == LEADING_HANDS[int(hands[i].argmax())]
        assert record["leading_hand_probability"] == pytest.approx(float(hands[i].max()), abs=1e-5)
        top = record["top_k"]
        assert len(top) == 3 and top[0]["gesture"] == record["gesture"]
        assert [t["probability"] for t in top] == sorted((t["probability"] for t in top), reverse=True)


def test_an_image_without_boxes_is_one_whole_image_crop_png_included(model, test_split, tmp_path):
    jpeg = Path(test_split[2][0].image)
    png = tmp_path / "frame.png"
    Image.open(jpeg).save(png)
    records = list(predict(model, targets_of([jpeg, png], None), device=torch.device("cpu")))
    assert [r["box"] for r in records] == [None, None]
    assert records[0]["gesture"] == records[1]["gesture"]  # PNG is lossless: the same pixels
    assert records[0]["gesture_probability"] == pytest.approx(records[1]["gesture_probability"], abs=1e-6)


def test_an_unreadable_image_gets_an_error_record_and_the_rest_go_on(model, test_split, tmp_path):
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not a jpeg")
    good = Path(test_split[2][0].image)
    records = list(predict(model, [Target(broken, None), Target(good, None)], device=torch.device("cpu")))
    assert "unreadable image" in records[0]["error"] and records[1]["gesture"] in model.class_names


def test_folders_expand_to_their_images_and_bad_paths_are_named(test_split, tmp_path):
    _, images, _ = test_split
    found = image_paths([images])
    assert found == sorted(found) and found and all(p.suffix == ".jpg" for p in found)
    with pytest.raises(DataError, match="missing.jpg does not exist"):
        image_paths([str(tmp_path / "missing.jpg")])
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="holds no images"):
        image_paths([str(tmp_path / "empty")])


def test_boxes_as_a_json_list_and_bad_boxes_named_by_file_and_entry(tmp_path):
    listed = tmp_path / "boxes.json"
    listed.write_text(json.dumps([{"image": "a.jpg", "bboxes": [[0.1, 0.2, 0.3, 0.4]]}]))
    assert read_boxes(listed) == {"a.jpg": [(0.1, 0.2, 0.3, 0.4)]}
    targets = targets_of([Path("x/a.jpg"), Path("x/b.jpg")], read_boxes(listed))
    assert targets == [Target(Path("x/a.jpg"), (0.1, 0.2, 0.3, 0.4)), Target(Path("x/b.jpg"), None)]
    listed.write_text(json.dumps([{"image": "a.jpg", "bboxes": [[0.1, 0.2, 1.5, 0.4]]}]))
    with pytest.raises(DataError, match=r"boxes.json entry 'a.jpg': box \[0.1, 0.2, 1.5, 0.4\]"):
        read_boxes(listed)
    listed.write_text("[1, 2]")
    with pytest.raises(DataError, match="boxes.json: expected HaGRID's"):
        read_boxes(listed)


def test_the_predict_command_prints_one_json_line_per_hand(trained_run, test_split, tmp_path, capsys):
    folder, _, samples = test_split
    images = tmp_path / "images"
    images.mkdir()
    for sample in samples[:3]:
        shutil.copy(sample.image, images / Path(sample.image).name)
    assert main(["predict", trained_run[0].best_checkpoint, str(images), "--top-k", "2"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(lines) == len({Path(s.image).name for s in samples[:3]})
    for line in lines:
        assert {"image", "gesture", "gesture_probability", "leading_hand", "leading_hand_probability"} <= set(
            line
        )
        assert len(line["top_k"]) == 2
    one = Path(samples[0].image)
    boxes = next(p for p in sorted(Path(folder).glob("*.json")) if one.stem in read_boxes(p))
    assert main(["predict", trained_run[0].best_checkpoint, str(one), "--boxes", str(boxes)]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [line["box"] for line in lines] == [list(box) for box in read_boxes(boxes)[one.stem]]


def test_the_predict_command_reports_bad_input_with_status_2(trained_run, tmp_path, capsys):
    checkpoint = trained_run[0].best_checkpoint
    assert main(["predict", checkpoint, str(tmp_path / "missing.jpg")]) == 2
    assert "missing.jpg does not exist" in capsys.readouterr().err
    assert main(["predict", checkpoint, str(tmp_path), "--top-k", "0"]) == 2
    assert "--top-k must be a positive integer" in capsys.readouterr().err


def test_records_come_in_input_order_with_unreadable_images_among_them(model, test_split, tmp_path):
    broken, other = tmp_path / "broken.jpg", tmp_path / "other.png"
    broken.write_bytes(b"not a jpeg")
    other.write_bytes(b"")
    good = [Path(sample.image) for sample in test_split[2][:3]]
    targets = [Target(image, None) for image in (good[0], broken, good[1], other, other, good[2])]
    for batch_size in (1, 2, 32):
        records = list(predict(model, targets, device=torch.device("cpu"), batch_size=batch_size))
        assert [r["image"] for r in records] == [str(t.image) for t in targets], batch_size
        assert ["error" in r for r in records] == [False, True, False, True, True, False]


def test_the_predict_command_prints_a_folder_s_records_in_order_bad_images_included(
    trained_run, test_split, tmp_path, capsys
):
    images = tmp_path / "images"
    images.mkdir()
    for i, sample in enumerate(test_split[2][:2]):
        shutil.copy(sample.image, images / f"{2 * i}.jpg")
    (images / "1.jpg").write_bytes(b"not a jpeg")
    (images / "3.jpg").write_bytes(b"truncated")
    assert main(["predict", trained_run[0].best_checkpoint, str(images)]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [Path(line["image"]).name for line in lines] == ["0.jpg", "1.jpg", "2.jpg", "3.jpg"]
    assert ["error" in line for line in lines] == [False, True, False, True]


BAD_BOXES = {
    "nan": "[NaN, 0.1, 0.2, 0.2]",
    "infinity": "[0.1, 0.1, Infinity, 0.2]",
    "overflow": "[0.1, 0.1, 1e999, 0.2]",
    "boolean": "[0.1, 0.1, true, 0.5]",
    "deep": "[" * 100_000 + "]" * 100_000,
}


@pytest.mark.parametrize("kind", list(BAD_BOXES))
def test_the_predict_command_refuses_non_finite_boolean_and_deep_boxes_in_one_line(
    kind, trained_run, test_split, tmp_path, capsys
):
    image = Path(test_split[2][0].image)
    boxes = tmp_path / "boxes.json"
    boxes.write_text(f'[{{"image": "{image.name}", "bboxes": [{BAD_BOXES[kind]}]}}]')
    assert main(["predict", trained_run[0].best_checkpoint, str(image), "--boxes", str(boxes)]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.startswith("error: ") and captured.err.count("\n") == 1
    assert str(boxes) in captured.err and len(captured.err) < 300


def test_an_image_name_in_a_boxes_list_must_be_a_string(tmp_path):
    listed = tmp_path / "boxes.json"
    listed.write_text(json.dumps([{"image": ["a.jpg"], "bboxes": [[0.1, 0.2, 0.3, 0.4]]}]))
    with pytest.raises(DataError, match="boxes.json: expected HaGRID's"):
        read_boxes(listed)


def test_a_boxes_folder_without_annotation_files_is_one_error_naming_it(tmp_path):
    from handgesture.prediction import read_boxes

    with pytest.raises(DataError, match=f"boxes folder {tmp_path} holds no .json files"):
        read_boxes(tmp_path)
