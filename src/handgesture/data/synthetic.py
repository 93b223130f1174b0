"""A small synthetic dataset in HaGRID's exact on-disk format (v1 or v2), for tests, demos and smoke runs.

Each frame is a noisy gradient background with clutter and one gesture hand: a palm blob with fingers whose
count, direction and colour depend on the class, and a thumb stub whose side depends on the hand, so both
heads have something to learn. About half the frames also hold the other hand as a "no_gesture" fist.
In v2 (no leading hand), a two-handed gesture shows both hands under one `united_bbox`, and `no_gesture` has
frames, a folder and a file of its own; the data comes as v2 ships: `hagrid_dataset/<gesture>/<id>.jpg` and
`hagrid_annotations/{train,val,test}/<gesture>.json`, the three splits of disjoint people.
"""

from __future__ import annotations

import json
import logging
import random
import uuid
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from handgesture.data.synthetic_drawing import (
    NO_GESTURE_COLOUR,
    Glyph,
    background,
    draw_hand,
    glyph_for,
    jitter,
    place,
)
from handgesture.errors import ConfigError
from handgesture.labels import HAGRID_TARGETS, NO_GESTURE

log = logging.getLogger(__name__)
# HaGRID v2's gestures shown with both hands (one united box around them).
TWO_HANDED = frozenset(
    {"hand_heart", "hand_heart2", "thumb_index2", "timeout", "holy", "take_picture", "xsign"}
)
V2_SPLITS = ("train", "val", "test")
# v2's automatic annotations of each person (`meta`), in the released values' form.
GENDERS = ("female", "male")
RACES = ("White", "Black", "Asian", "Indian", "Latino_Hispanic", "Middle Eastern")


def _make_frame(rng, nprng, frame, glyph: Glyph | None, both_hands: bool) -> tuple[Image.Image, dict]:
    """A frame with the gesture hand (both, when `both_hands`), maybe a no_gesture hand; glyph None draws
    only no_gesture hands (v2's own no_gesture frames). Returns the image, pixel boxes, labels and hand."""
    image = background(rng, nprng, frame)
    draw = ImageDraw.Draw(image)
    hand = rng.choice(["left", "right"])
    other = "left" if hand == "right" else "right"
    half = rng.randint(0, 1)
    boxes = [place(rng, frame, half, (0.15, 0.45))]
    draw_hand(draw, boxes[0], glyph, hand, jitter(rng, glyph.colour if glyph else NO_GESTURE_COLOUR))
    labels = ["gesture" if glyph else NO_GESTURE]
    if both_hands or rng.random() < 0.5:
        boxes.append(place(rng, frame, 1 - half, (0.15, 0.35) if not both_hands else (0.15, 0.45)))
        second = glyph if both_hands else None
        draw_hand(draw, boxes[1], second, other, jitter(rng, second.colour if second else NO_GESTURE_COLOUR))
        labels.append(labels[0] if both_hands else NO_GESTURE)
    return image, {"boxes": boxes, "labels": labels, "hand": hand}


def _entry(frame: tuple[int, int], drawn: dict, name: str, version: int, both_hands: bool) -> dict:
    """The annotation of a drawn frame in HaGRID `version`'s format."""
    width, height = frame
    norm = [_normalised(box, width, height) for box in drawn["boxes"]]
    labels = [name if label == "gesture" else label for label in drawn["labels"]]
    if version == 1:
        return {
            "bboxes": norm,
            "labels": labels,
            "leading_hand": drawn["hand"],
            "leading_conf": 1.0,
            "landmarks": [[] for _ in norm],
        }
    united = _normalised(_union(drawn["boxes"]), width, height) if both_hands else None
    return {
        "bboxes": norm,
        "labels": labels,
        "united_bbox": [united for _ in norm],
        "united_label": [name if both_hands else None for _ in norm],
        "hand_landmarks": [[] for _ in norm],
    }


def _meta(user_id: str) -> dict:
    """The person's v2 `meta`: the same for every image of theirs, drawn from their id alone."""
    rng = random.Random(user_id)
    return {
        "age": [round(rng.uniform(18.0, 65.0), 1)],
        "gender": [rng.choice(GENDERS)],
        "race": [rng.choice(RACES)],
    }


def _normalised(box, width: int, height: int) -> list[float]:
    x, y, w, h = box
    return [round(x / width, 6), round(y / height, 6), round(w / width, 6), round(h / height, 6)]


def _union(boxes) -> tuple[int, int, int, int]:
    x0, y0 = min(b[0] for b in boxes), min(b[1] for b in boxes)
    x1, y1 = max(b[0] + b[2] for b in boxes), max(b[1] + b[3] for b in boxes)
    return x0, y0, x1 - x0, y1 - y0


def _hex_id(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


@dataclass
class _Writer:
    """Draws frames into `images/<gesture>/` and writes their annotations, one split at a time."""

    images: Path
    rng: random.Random
    nprng: np.random.Generator
    frame: tuple[int, int]
    version: int

    def people(self, count: int) -> list[str]:
        return [_hex_id(self.rng).replace("-", "") for _ in range(count)]

    def split(self, folder: Path, names, per_class: int, users: list[str]) -> int:
        folder.mkdir(parents=True, exist_ok=True)
        for position, name in enumerate(names):
            glyph = None if name == NO_GESTURE else glyph_for(name, position)
            both_hands = self.version == 2 and name in TWO_HANDED
            (self.images / name).mkdir(parents=True, exist_ok=True)
            entries = {}
            for i in range(per_class):
                image, drawn = _make_frame(self.rng, self.nprng, self.frame, glyph, both_hands)
                entry = _entry(self.frame, drawn, name, self.version, both_hands)
                entry["user_id"] = users[(i + position) % len(users)]  # every person shows every gesture
                if self.version == 2:
                    entry["meta"] = _meta(entry["user_id"])
                image_id = _hex_id(self.rng)
                image.save(self.images / name / f"{image_id}.jpg", quality=90)
                entries[image_id] = entry
            with open(folder / f"{name}.json", "w", encoding="utf-8") as fh:
                json.dump(entries, fh, indent=1, sort_keys=True)
        return per_class * len(names)


def generate_synthetic(
    out_dir,
    *,
    per_class: int,
    targets=HAGRID_TARGETS,
    users: int = 10,
    frame_size: tuple[int, int] = (320, 240),
    seed: int = 0,
    test_per_class: int = 0,
    version: int = 1,
) -> dict:
    """A synthetic dataset in HaGRID ``version`` 1 or 2's format under ``out_dir``; its output depends only
    on the arguments. Returns the folders (the `dataset.*` keys that read them: annotations, val_annotations,
    test_annotations, dataset) and the number of images written.

    v1: ``annotations/<gesture>.json`` and ``images/<gesture>/<id>.jpg``; with ``test_per_class > 0`` also
    ``test_annotations/`` for other people. v2, as it ships: ``hagrid_annotations/{train,val,test}/`` and
    ``hagrid_dataset/<gesture>/<id>.jpg``, ``per_class`` training images per gesture and a quarter as many
    (at least 1; ``test_per_class`` for test, when set) in val and test, each split of ``users`` people of
    its own; ``no_gesture.json`` and its folder too, when it is a target.
    """
    width, height = frame_size
    if per_class < 1 or users < 1 or test_per_class < 0:
        raise ConfigError(
            f"need per_class >= 1, users >= 1, test_per_class >= 0; got {per_class}, {users}, "
            f"{test_per_class}"
        )
    if width < 64 or height < 64:
        raise ConfigError(f"frame_size must be at least 64 x 64 (W, H), got {frame_size}")
    if version not in (1, 2):
        raise ConfigError(f"version must be 1 or 2 (HaGRID's annotation formats), got {version}")
    gestures = [name for name in targets if name != NO_GESTURE]
    if not gestures:
        raise ConfigError(f"targets must name at least one gesture besides {NO_GESTURE!r}, got {targets}")
    if version == 2 and NO_GESTURE in targets:
        gestures.append(NO_GESTURE)
    out = Path(out_dir)
    images = out / ("hagrid_dataset" if version == 2 else "images")
    writer = _Writer(images, random.Random(seed), np.random.default_rng(seed), frame_size, version)
    write = _write_v2 if version == 2 else _write_v1
    folders, count = write(writer, out, gestures, per_class, users, test_per_class)
    log.info("Wrote %d synthetic images for %d gestures under %s", count, len(gestures), out)
    return {**folders, "dataset": str(images), "images": count}


def _write_v1(writer: _Writer, out: Path, gestures, per_class, users, test_per_class) -> tuple[dict, int]:
    count = writer.split(out / "annotations", gestures, per_class, writer.people(users))
    folders = {"annotations": str(out / "annotations"), "val_annotations": None, "test_annotations": None}
    if test_per_class > 0:
        count += writer.split(out / "test_annotations", gestures, test_per_class, writer.people(users))
        folders["test_annotations"] = str(out / "test_annotations")
    return folders, count


def _write_v2(writer: _Writer, out: Path, gestures, per_class, users, test_per_class) -> tuple[dict, int]:
    smaller = max(1, per_class // 4)
    sizes = {"train": per_class, "val": smaller, "test": test_per_class or smaller}
    count, root = 0, out / "hagrid_annotations"
    for split in V2_SPLITS:  # fresh people for each split: nobody is in two
        count += writer.split(root / split, gestures, sizes[split], writer.people(users))
    keys = ("annotations", "val_annotations", "test_annotations")
    return {key: str(root / split) for key, split in zip(keys, V2_SPLITS, strict=True)}, count
