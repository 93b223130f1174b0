"""A small synthetic dataset in HaGRID's exact on-disk format (v1 or v2), for tests, demos and smoke runs.

Each frame is a noisy gradient background with clutter and one gesture hand: a palm blob with fingers whose
count, direction and colour depend on the class, and a thumb stub whose side depends on the hand, so both
heads have something to learn. About half the frames also hold the other hand as a "no_gesture" fist.
In v2 (no leading hand), a two-handed gesture shows both hands under one `united_bbox`, and `no_gesture` has
frames, a folder and a file of its own.
"""

from __future__ import annotations

import json
import logging
import random
import uuid
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
TWO_HANDED = frozenset({"hand_heart", "hand_heart2", "thumb_index2", "timeout", "take_picture", "xsign"})


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
        "meta": {"age": [30.0], "gender": ["unknown"], "race": ["unknown"]},
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


def _write_split(out: Path, folder: str, names, per_class, users, rng, nprng, frame, version: int) -> int:
    (out / folder).mkdir(parents=True, exist_ok=True)
    for position, name in enumerate(names):
        glyph = None if name == NO_GESTURE else glyph_for(name, position)
        both_hands = version == 2 and name in TWO_HANDED
        (out / "images" / name).mkdir(parents=True, exist_ok=True)
        entries = {}
        for i in range(per_class):
            image, drawn = _make_frame(rng, nprng, frame, glyph, both_hands)
            entry = _entry(frame, drawn, name, version, both_hands)
            entry["user_id"] = users[(i + position) % len(users)]  # every person shows every gesture
            image_id = _hex_id(rng)
            image.save(out / "images" / name / f"{image_id}.jpg", quality=90)
            entries[image_id] = entry
        with open(out / folder / f"{name}.json", "w", encoding="utf-8") as fh:
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
    """Write ``<out_dir>/annotations/<gesture>.json`` and ``<out_dir>/images/<gesture>/<id>.jpg`` in HaGRID
    ``version`` 1 or 2's format (v2 also writes ``no_gesture.json`` and its folder, when it is a target).

    With ``test_per_class > 0`` also ``<out_dir>/test_annotations`` for a disjoint set of people. The
    output depends only on the arguments. Returns the folders and the number of images written.
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
    out, rng, nprng = Path(out_dir), random.Random(seed), np.random.default_rng(seed)
    train_users = [_hex_id(rng).replace("-", "") for _ in range(users)]
    count = _write_split(
        out, "annotations", gestures, per_class, train_users, rng, nprng, frame_size, version
    )
    test_dir = None
    if test_per_class > 0:
        test_users = [_hex_id(rng).replace("-", "") for _ in range(users)]
        count += _write_split(
            out, "test_annotations", gestures, test_per_class, test_users, rng, nprng, frame_size, version
        )
        test_dir = str(out / "test_annotations")
    log.info("Wrote %d synthetic images for %d gestures under %s", count, len(gestures), out)
    return {
        "annotations": str(out / "annotations"),
        "dataset": str(out / "images"),
        "test_annotations": test_dir,
        "images": count,
    }
