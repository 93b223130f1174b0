"""Synthetic HaGRID-format generator: format, round trip, determinism, variety."""

import itertools
import json
import math
import uuid
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

from handgesture.data.annotations import read_annotations, split_by_user
from handgesture.data.synthetic import generate_synthetic
from handgesture.data.synthetic_drawing import GLYPHS, NO_GESTURE_COLOUR, draw_hand
from handgesture.labels import HAGRID_TARGETS

FRAME = (96, 72)


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    out = tmp_path_factory.mktemp("synth")
    return out, generate_synthetic(out, per_class=4, users=4, frame_size=FRAME, seed=1, test_per_class=2)


def _load(folder) -> dict:
    return {p.stem: json.loads(p.read_text()) for p in sorted(Path(folder).glob("*.json"))}


def test_writes_hagrid_layout(synth):
    out, result = synth
    gestures = [g for g in HAGRID_TARGETS if g != "no_gesture"]
    assert result == {
        "annotations": str(out / "annotations"),
        "val_annotations": None,
        "dataset": str(out / "images"),
        "test_annotations": str(out / "test_annotations"),
        "images": 6 * len(gestures),
    }
    files = _load(result["annotations"])
    assert sorted(files) == sorted(gestures)
    for gesture, entries in files.items():
        assert len(entries) == 4
        for image_id, entry in entries.items():
            uuid.UUID(image_id)
            assert set(entry) == {"bboxes", "labels", "leading_hand", "leading_conf", "user_id", "landmarks"}
            assert len(entry["bboxes"]) == len(entry["labels"]) == len(entry["landmarks"])
            assert entry["labels"][0] == gesture and set(entry["labels"][1:]) <= {"no_gesture"}
            for x, y, w, h in entry["bboxes"]:
                assert min(x, y) >= 0 and max(x + w, y + h) <= 1 + 1e-6 and min(w, h) > 0
            with Image.open(out / "images" / gesture / f"{image_id}.jpg") as image:
                assert image.size == FRAME and image.format == "JPEG"


def test_round_trips_through_the_reader(synth):
    _, result = synth
    read = read_annotations(result["annotations"], result["dataset"], HAGRID_TARGETS)
    boxes = sum(
        len(e["bboxes"]) for entries in _load(result["annotations"]).values() for e in entries.values()
    )
    assert read.missing_images == 0 and len(read.samples) == boxes
    counts = Counter(s.gesture for s in read.samples)
    assert all(counts[i] == 4 for i in range(len(HAGRID_TARGETS) - 1))
    assert counts[HAGRID_TARGETS.index("no_gesture")] > 0
    test = read_annotations(result["test_annotations"], result["dataset"], HAGRID_TARGETS)
    assert len(test.samples) >= 2 * (len(HAGRID_TARGETS) - 1)
    assert not {s.user_id for s in test.samples} & {s.user_id for s in read.samples}


def test_variety_users_hands_and_edges(synth):
    _, result = synth
    entries = [e for f in _load(result["annotations"]).values() for e in f.values()]
    assert len({e["user_id"] for e in entries}) == 4
    assert {e["leading_hand"] for e in entries} == {"left", "right"}
    with_no_gesture = sum("no_gesture" in e["labels"] for e in entries)
    assert 0.25 < with_no_gesture / len(entries) < 0.75
    touching = [
        b
        for e in entries
        for b in e["bboxes"]
        if min(b[0], b[1]) == 0 or max(b[0] + b[2], b[1] + b[3]) > 0.999
    ]
    assert touching
    heights = [e["bboxes"][0][3] for e in entries]
    assert min(heights) >= 0.14 and max(heights) <= 0.46
    samples = read_annotations(result["annotations"], result["dataset"], HAGRID_TARGETS).samples
    train, val = split_by_user(samples, seed=0)
    assert {s.gesture for s in train} == {s.gesture for s in val} == set(range(len(HAGRID_TARGETS)))


def _snapshot(root: Path) -> dict:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_deterministic_for_a_seed(tmp_path):
    targets = ["like", "palm", "no_gesture"]
    for name, seed in (("a", 7), ("b", 7), ("c", 8)):
        generate_synthetic(
            tmp_path / name, per_class=3, targets=targets, users=2, frame_size=FRAME, seed=seed
        )
    a, b, c = (_snapshot(tmp_path / name) for name in "abc")
    assert a == b
    assert a != c
    assert "test_annotations" not in {Path(k).parts[0] for k in a}


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"per_class": 0}, "per_class"), ({"per_class": 1, "frame_size": (32, 32)}, "frame_size"),
     ({"per_class": 1, "targets": ["no_gesture"]}, "targets")],
)  # fmt: skip
def test_bad_arguments_are_named(tmp_path, kwargs, match):
    with pytest.raises(ValueError, match=match):
        generate_synthetic(tmp_path, **kwargs)


def _render(glyph, hand: str) -> np.ndarray:
    image = Image.new("RGB", (60, 80))
    draw_hand(ImageDraw.Draw(image), (5, 5, 50, 70), glyph, hand, (255, 255, 255))
    return np.asarray(image)[..., 0] > 0


@pytest.mark.parametrize("glyph", [*GLYPHS, None])
def test_left_hand_is_the_mirror_of_the_right_hand(glyph):
    left, right = _render(glyph, "left"), _render(glyph, "right")
    assert (left != right).sum() > 100  # the thumb side is visible in the crop
    mirrored = right[:, ::-1]
    # A mirror image, up to the rasteriser's one-pixel rounding at the outline.
    assert (left & ~_dilate(mirrored)).sum() <= 5 and (mirrored & ~_dilate(left)).sum() <= 5


def _dilate(mask: np.ndarray) -> np.ndarray:
    padded = np.pad(mask, 1)
    h, w = mask.shape
    return np.any([padded[dy : dy + h, dx : dx + w] for dy in range(3) for dx in range(3)], axis=0)


def test_every_gesture_has_its_own_shape_and_colour():
    shapes = [_render(glyph, "right") for glyph in GLYPHS]
    for i, j in itertools.combinations(range(len(shapes)), 2):
        assert (shapes[i] != shapes[j]).sum() > 50, (HAGRID_TARGETS[i], HAGRID_TARGETS[j])
    colours = [glyph.colour for glyph in GLYPHS] + [NO_GESTURE_COLOUR]
    assert min(math.dist(a, b) for a, b in itertools.combinations(colours, 2)) > 100
