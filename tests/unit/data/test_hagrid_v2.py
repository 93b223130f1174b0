"""HaGRID v2's annotations: no leading hand, united boxes for two-handed gestures, no_gesture on its own;
read, generated, and trained on."""

import json
import math

import pytest

from handgesture.config import load_config
from handgesture.data.annotations import read_annotations
from handgesture.data.synthetic import generate_synthetic
from handgesture.errors import DataError
from handgesture.labels import HAGRID_V2_TARGETS, UNKNOWN_HAND
from handgesture.training import run_training
from tests.unit.data.test_annotations import write_dataset

TARGETS = ["hand_heart", "like", "no_gesture"]


def v2_entry(boxes, labels, united=None, united_label=None, user="u1"):
    return {
        "bboxes": boxes,
        "labels": labels,
        "united_bbox": united or [None] * len(boxes),
        "united_label": united_label or [None] * len(boxes),
        "user_id": user,
        "hand_landmarks": [[] for _ in boxes],
        "meta": {"age": [30.0], "gender": ["female"], "race": ["White"]},
    }


def test_two_handed_gestures_are_one_united_sample_and_hands_are_unknown(tmp_path):
    union, hearts = [0.1, 0.1, 0.6, 0.5], ["hand_heart", "hand_heart"]
    two_hands = [[0.1, 0.1, 0.2, 0.2], [0.5, 0.3, 0.2, 0.3]]
    ann, data = write_dataset(tmp_path, {
        "hand_heart": {"a": v2_entry(two_hands, hearts, [union, union], hearts)},
        "like": {"b": v2_entry([[0.2, 0.2, 0.2, 0.2], [0.6, 0.6, 0.1, 0.1]], ["like", "no_gesture"])},
        "no_gesture": {"c": v2_entry([[0.3, 0.3, 0.2, 0.2]], ["no_gesture"])},
    })  # fmt: skip
    samples = read_annotations(ann, data, TARGETS).samples
    assert [(s.gesture, s.box) for s in samples] == [
        (0, tuple(union)),  # both hands of the heart: one crop around them
        (1, (0.2, 0.2, 0.2, 0.2)),
        (2, (0.6, 0.6, 0.1, 0.1)),  # a no_gesture box in a gesture's frame
        (2, (0.3, 0.3, 0.2, 0.2)),  # no_gesture's own file and folder
    ]
    assert {s.leading_hand for s in samples} == {UNKNOWN_HAND}


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"united_bbox": [[0, 0, 1]]}, "united_bbox 0 must be 4 finite numbers"),
        ({"united_bbox": [None, None]}, "'united_bbox' must be a list aligned with 'bboxes'"),
        ({"united_bbox": [[0, 0, 1, 1]], "united_label": [None]}, "united_bbox 0 has no united_label"),
    ],
)
def test_malformed_united_boxes_name_file_id_and_problem(tmp_path, change, expected):
    ann, data = write_dataset(tmp_path, {"like": {"img7": {**v2_entry([[0, 0, 1, 1]], ["like"]), **change}}})
    with pytest.raises(DataError, match=expected) as info:
        read_annotations(ann, data, TARGETS)
    assert "'img7'" in str(info.value)


def test_the_synthetic_generator_writes_v2(tmp_path):
    written = generate_synthetic(tmp_path, per_class=2, targets=HAGRID_V2_TARGETS, users=2, version=2)
    heart = json.loads((tmp_path / "hagrid_annotations" / "train" / "hand_heart.json").read_text())
    entry = next(iter(heart.values()))
    assert "leading_hand" not in entry and entry["united_label"] == ["hand_heart", "hand_heart"]
    assert (tmp_path / "hagrid_annotations" / "val" / "no_gesture.json").is_file()
    assert (tmp_path / "hagrid_dataset" / "no_gesture").is_dir()
    for split in ("annotations", "val_annotations", "test_annotations"):
        samples = read_annotations(written[split], written["dataset"], HAGRID_V2_TARGETS).samples
        assert {s.gesture for s in samples} == set(range(len(HAGRID_V2_TARGETS)))  # all 34 classes


def _split_files(root) -> dict[str, dict[str, dict]]:
    """split -> gesture -> the annotation file's entries."""
    return {
        split.name: {path.stem: json.loads(path.read_text()) for path in sorted(split.glob("*.json"))}
        for split in sorted((root / "hagrid_annotations").iterdir())
    }


def test_v2_is_written_as_it_ships_three_splits_of_disjoint_people(tmp_path):
    written = generate_synthetic(tmp_path, per_class=8, targets=V2_SMALL, users=3, frame_size=(96, 64),
                                 seed=7, version=2)  # fmt: skip
    root = tmp_path / "hagrid_annotations"
    assert written == {
        "annotations": str(root / "train"), "val_annotations": str(root / "val"),
        "test_annotations": str(root / "test"), "dataset": str(tmp_path / "hagrid_dataset"), "images": 36,
    }  # fmt: skip
    assert sorted(p.name for p in tmp_path.iterdir()) == ["hagrid_annotations", "hagrid_dataset"]
    splits = _split_files(tmp_path)
    assert {split: sorted(files) for split, files in splits.items()} == {
        split: sorted(V2_SMALL) for split in ("test", "train", "val")
    }
    assert {split: len(files["like"]) for split, files in splits.items()} == {"train": 8, "val": 2, "test": 2}
    people = {
        split: {e["user_id"] for f in files.values() for e in f.values()} for split, files in splits.items()
    }
    assert all(len(ids) == 3 for ids in people.values())
    assert not people["train"] & people["val"] and not people["train"] & people["test"]
    assert not people["val"] & people["test"]
    for files in splits.values():
        for gesture, entries in files.items():
            for image_id, entry in entries.items():
                _check_v2_entry(entry, gesture)
                assert (tmp_path / "hagrid_dataset" / gesture / f"{image_id}.jpg").is_file()


V2_SMALL = ["hand_heart", "like", "no_gesture"]
V2_FIELDS = {"bboxes", "labels", "united_bbox", "united_label", "user_id", "hand_landmarks", "meta"}


def _check_v2_entry(entry: dict, gesture: str) -> None:
    boxes = len(entry["bboxes"])
    assert set(entry) == V2_FIELDS
    assert len(entry["labels"]) == len(entry["united_bbox"]) == len(entry["united_label"]) == boxes
    assert len(entry["hand_landmarks"]) == boxes
    age, sex, race = entry["meta"]["age"], entry["meta"]["gender"], entry["meta"]["race"]
    assert isinstance(age[0], float) and isinstance(sex[0], str) and isinstance(race[0], str)
    assert len(age) == len(sex) == len(race) == 1
    if gesture == "no_gesture":  # its own folder: nothing but no_gesture hands
        assert set(entry["labels"]) == {"no_gesture"} and entry["united_bbox"] == [None] * boxes
    elif gesture == "hand_heart":  # two-handed: one united box over both hands
        assert entry["labels"] == entry["united_label"] == ["hand_heart"] * 2
        assert entry["united_bbox"][0] == entry["united_bbox"][1] is not None
    else:
        assert entry["labels"][0] == gesture and set(entry["labels"][1:]) <= {"no_gesture"}
        assert entry["united_bbox"] == entry["united_label"] == [None] * boxes


def test_a_persons_meta_is_the_same_in_every_image(tmp_path):
    generate_synthetic(tmp_path, per_class=8, targets=V2_SMALL, users=2, frame_size=(64, 64), version=2)
    metas: dict[str, list] = {}
    for files in _split_files(tmp_path).values():
        for entries in files.values():
            for entry in entries.values():
                metas.setdefault(entry["user_id"], []).append(entry["meta"])
    assert all(len(set(map(json.dumps, found))) == 1 for found in metas.values())
    assert len(metas) == 6


@pytest.mark.slow
def test_training_on_v2_masks_the_leading_hand(tmp_path):
    data = generate_synthetic(tmp_path / "v2", per_class=10, targets=TARGETS, users=4, frame_size=(160, 120),
                              seed=4, version=2)  # fmt: skip
    config = load_config("configs/demo.yaml", [
        f"dataset.annotations={data['annotations']}", f"dataset.dataset={data['dataset']}",
        f"dataset.cache_dir={tmp_path / 'cache'}", f"dataset.targets={TARGETS}".replace("'", ""),
        "dataset.image_size=[32,32]", "model.name=MobileNetV3_small", "train_params.epochs=2",
        "train_params.train_batch_size=8", "train_params.num_workers=0", f"storage.uri={tmp_path / 'runs'}",
        "synthetic.generate_if_missing=false",
    ])  # fmt: skip
    summary = run_training(config, run_name="v2")
    assert math.isfinite(summary.metrics["train/loss"]) and 0.0 <= summary.metrics["gesture/f1_score"] <= 1.0
    assert not [key for key in summary.metrics if key.startswith("leading_hand/")]


class _CountedLabel(str):
    """A label that counts its comparisons, and stops a parse that compares it quadratically often."""

    comparisons = 0
    budget = 0

    def __eq__(self, other):
        type(self).comparisons += 1
        if type(self).comparisons > type(self).budget:
            raise AssertionError(f"over {type(self).budget} label comparisons: quadratic in boxes per image")
        return str.__eq__(self, other)

    __hash__ = str.__hash__


def test_united_boxes_are_deduplicated_in_linear_comparisons(monkeypatch):
    """20,000 two-handed boxes in one image, all under one united box but with distinct labels: a parse that
    looks each pair up in the pairs so far compares labels n^2 / 2 times; a set index compares about n."""
    from handgesture.data.entries import parse_entry

    n = 20_000
    labels = [_CountedLabel(f"label{i}") for i in range(n)]
    monkeypatch.setattr(_CountedLabel, "comparisons", 0)
    monkeypatch.setattr(_CountedLabel, "budget", 4 * n)
    box = [0.1, 0.1, 0.2, 0.2]
    entry = {"bboxes": [box] * n, "labels": labels, "user_id": "u", "united_bbox": [box] * n}
    entry["united_label"] = labels
    parsed = parse_entry(entry, "many.json, image 'crowd'")
    assert len(parsed.pairs) == n and parsed.pairs[-1] == ((0.1, 0.1, 0.2, 0.2), "label19999")
    assert _CountedLabel.comparisons <= 4 * n


def test_united_boxes_keep_their_order_and_drop_repeats():
    from handgesture.data.entries import parse_entry

    a, b, c = [0.1, 0.1, 0.2, 0.2], [0.5, 0.5, 0.2, 0.2], [0.3, 0.3, 0.1, 0.1]
    entry = {
        "bboxes": [a, b, c, a, c],
        "labels": ["hand_heart", "hand_heart", "fist", "hand_heart", "fist"],
        "user_id": "u",
        "united_bbox": [[0, 0, 1, 1], [0, 0, 1, 1], None, [0, 0, 1, 1], None],
        "united_label": ["hand_heart", "hand_heart", None, "timeout", None],
    }
    pairs = parse_entry(entry, "x").pairs
    whole = (0.0, 0.0, 1.0, 1.0)
    assert pairs == [(whole, "hand_heart"), (tuple(c), "fist"), (whole, "timeout"), (tuple(c), "fist")]
