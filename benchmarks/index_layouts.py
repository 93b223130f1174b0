"""Simulated full-size HaGRID annotation sets for bench_index.py: every annotated image a hard link to one of
a few hundred real frames (a real size on disk, no disk cost), the JSON as large as HaGRID's own.

v1 (2022): ``ann_train_val/<gesture>.json`` (18 gestures; a no_gesture hand inside them), ``images/``.
v2 (2024): ``hagrid_annotations/{train,val,test}/<gesture>.json`` (34 targets, no_gesture with a file of
its own), ``hagrid_dataset/<gesture>/``; entries with bboxes, labels, united_bbox / united_label (one box over
both hands of a two-handed gesture), user_id, hand_landmarks (21 [x, y] points per hand: most of the bytes)
and meta {age, gender, race}. Images are split across people, as v2's fixed splits are.
"""

from __future__ import annotations

import json
import os
import random
import uuid
from pathlib import Path

from handgesture.labels import HAGRID_TARGETS, HAGRID_V2_TARGETS, NO_GESTURE

V1_GESTURES = [t for t in HAGRID_TARGETS if t != NO_GESTURE]
V1_PEOPLE = 35_000  # HaGRID v1: 34,730 subjects
V1_SECOND_HAND = 0.1  # share of images that also annotate a no_gesture hand

# HaGRID v2: 1,086,158 images in fixed splits, 65,977 people, about 1.38 boxes per image.
V2_SPLITS = {"train": 821_458, "val": 99_200, "test": 165_500}
V2_IMAGES = sum(V2_SPLITS.values())
V2_PEOPLE = 65_977
V2_TWO_HANDED = frozenset({"hand_heart", "hand_heart2", "thumb_index2", "timeout", "take_picture", "xsign"})
# Two-handed gestures always have 2 boxes (6 of 34 files); a second (no_gesture) hand in 1 of 4 other images
# brings the mean to 1 + 6/34 + 28/34 * 0.25 = 1.38 boxes per image.
V2_SECOND_HAND = 0.25
LANDMARK_POOL = 256  # distinct landmark lists (pre-serialised, so writing 1.5 M hands takes seconds)


def write_v1(root: Path, frames: list[Path], hands: int) -> tuple[Path, Path, int]:
    """HaGRID v1's layout, `<ann>/<gesture>.json` and `<images>/<gesture>/<id>.jpg`; returns the folders and
    the number of hands written."""
    rng = random.Random(0)
    people = [uuid.UUID(int=rng.getrandbits(128)).hex for _ in range(V1_PEOPLE)]
    ann, images = root / "ann_train_val", root / "images"
    ann.mkdir()
    per_gesture = round(hands / (1 + V1_SECOND_HAND) / len(V1_GESTURES))
    written = 0
    for gesture in V1_GESTURES:
        (images / gesture).mkdir(parents=True)
        entries = {}
        for _ in range(per_gesture):
            image_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))
            os.link(frames[rng.randrange(len(frames))], images / gesture / f"{image_id}.jpg")
            boxes, labels = [_box(rng)], [gesture]
            if rng.random() < V1_SECOND_HAND:
                boxes.append(_box(rng))
                labels.append(NO_GESTURE)
            entries[image_id] = {
                "bboxes": boxes,
                "labels": labels,
                "leading_hand": rng.choice(["right", "left"]),
                "leading_conf": 1.0,
                "user_id": rng.choice(people),
            }
            written += len(boxes)
        (ann / f"{gesture}.json").write_text(json.dumps(entries))
    return ann, images, written


def write_v2(root: Path, frames: list[Path], images: int) -> tuple[dict[str, Path], Path, int, int]:
    """HaGRID v2's layout with ``images`` images over the three splits in v2's proportions; returns each
    split's annotations folder, the images folder, and the images and boxes written."""
    rng = random.Random(0)
    landmarks = [_landmarks(rng) for _ in range(LANDMARK_POOL)]
    people = [uuid.UUID(int=rng.getrandbits(128)).hex for _ in range(V2_PEOPLE)]
    data = root / "hagrid_dataset"
    for gesture in HAGRID_V2_TARGETS:
        (data / gesture).mkdir(parents=True)
    folders, written, boxes = {}, 0, 0
    start = 0
    for split, full in V2_SPLITS.items():
        share = round(len(people) * full / V2_IMAGES)  # the split's own people: v2 splits by person
        split_people, start = people[start : start + share], start + share
        folders[split] = root / "hagrid_annotations" / split
        folders[split].mkdir(parents=True)
        per_gesture = max(1, round(images * full / V2_IMAGES / len(HAGRID_V2_TARGETS)))
        for gesture in HAGRID_V2_TARGETS:
            entries = []
            for _ in range(per_gesture):
                image_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))
                os.link(frames[rng.randrange(len(frames))], data / gesture / f"{image_id}.jpg")
                text, count = _v2_entry(rng, gesture, rng.choice(split_people), landmarks)
                entries.append(f'"{image_id}": {text}')
                boxes += count
            (folders[split] / f"{gesture}.json").write_text("{" + ", ".join(entries) + "}")
            written += per_gesture
    return folders, data, written, boxes


def _v2_entry(rng: random.Random, gesture: str, person: str, landmarks: list[str]) -> tuple[str, int]:
    """One image's entry as v2 writes it (JSON text), and its number of boxes."""
    boxes = [_box(rng)]
    if gesture in V2_TWO_HANDED:
        boxes.append(_box(rng))
        labels, united = [gesture, gesture], [_united(boxes)] * 2
    elif rng.random() < V2_SECOND_HAND:
        boxes.append(_box(rng))
        labels, united = [gesture, NO_GESTURE], [None, None]
    else:
        labels, united = [gesture], [None]
    entry = {
        "bboxes": boxes,
        "labels": labels,
        "united_bbox": united,
        "united_label": [gesture if box else None for box in united],
        "user_id": person,
        "hand_landmarks": "LANDMARKS",
        "meta": {"age": [round(rng.uniform(18, 65), 1)], "gender": [rng.choice(["female", "male"])],
                 "race": [rng.choice(["White", "Black", "Asian", "Indian", "Latino_Hispanic"])]},
    }  # fmt: skip
    hands = ", ".join(rng.choice(landmarks) for _ in boxes)
    return json.dumps(entry).replace('"LANDMARKS"', f"[{hands}]"), len(boxes)


def _landmarks(rng: random.Random) -> str:
    """21 [x, y] points as MediaPipe's float32 coordinates print from Python (about 19 digits each)."""
    return json.dumps([[float(f"{rng.random():.8g}") + 1e-9 * rng.random() for _ in "xy"] for _ in range(21)])


def _united(boxes: list[list[float]]) -> list[float]:
    x0, y0 = min(b[0] for b in boxes), min(b[1] for b in boxes)
    x1, y1 = max(b[0] + b[2] for b in boxes), max(b[1] + b[3] for b in boxes)
    return [round(x0, 6), round(y0, 6), round(x1 - x0, 6), round(y1 - y0, 6)]


def _box(rng: random.Random) -> list[float]:
    w, h = rng.uniform(0.05, 0.12), rng.uniform(0.1, 0.2)  # HaGRID's hands: about 100-250 px of 1080
    return [round(rng.uniform(0, 1 - w), 6), round(rng.uniform(0, 1 - h), 6), round(w, 6), round(h, 6)]
