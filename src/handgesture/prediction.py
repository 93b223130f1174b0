"""Run a model on images: the gesture and the leading hand, with probabilities, of each hand box, or of the
whole image as one crop when no box is given. The library side of `handgesture predict`.

Crops are cut exactly as evaluation cuts them (a square around the box, resized and padded to the model's
input), so a prediction on a dataset frame is the evaluation's prediction for that hand. A full-frame model
(HaGRID v2's, `LoadedModel.full_frame`) classifies each whole image, letterboxed as its training data was
(`data.full_frames.letterbox`): boxes mean nothing to it, and its records have no leading hand.
"""

from __future__ import annotations

import json
import math
import reprlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from handgesture.data import sources
from handgesture.data.dataset import crop_square, resize_and_pad
from handgesture.data.frames import UnreadableFrame, read_frame
from handgesture.data.full_frames import letterbox
from handgesture.data.geometry import square_crop_box
from handgesture.errors import DataError
from handgesture.inference import LoadedModel
from handgesture.labels import LEADING_HANDS
from handgesture.models import preprocess

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
WHOLE_IMAGE = (0.0, 0.0, 1.0, 1.0)
Box = tuple[float, float, float, float]  # HaGRID's normalised x, y, w, h with a top-left origin


@dataclass(frozen=True)
class Target:
    image: Path
    box: Box | None  # None: the whole image as one crop


def image_paths(inputs: Iterable[str]) -> list[Path]:
    """The image files named, folders expanded to the images in them (sorted, subfolders included)."""
    found: list[Path] = []
    for name in inputs:
        path = Path(name)
        if path.is_dir():
            inside = sorted(p for p in path.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
            if not inside:
                raise DataError(f"{path} holds no images (expected {', '.join(IMAGE_SUFFIXES)} files)")
            found += inside
        elif path.is_file():
            found.append(path)
        else:
            raise DataError(f"{path} does not exist (expected an image file or a folder of images)")
    return found


def read_boxes(path: Path | str) -> dict[str, list[Box]]:
    """Hand boxes by image: HaGRID's annotation format (`{image_id: {"bboxes": [[x, y, w, h], ...]}}`), a
    folder of such files (HaGRID's annotations folder: every `<gesture>.json` in it), or a JSON list of
    `{"image": name or path, "bboxes": [[x, y, w, h], ...]}`; coordinates in [0, 1]. A file may be in an
    archive or on S3 (`sources.read_file`: ``zip://ann_subsample/like.json::s3://...``)."""
    if Path(path).is_dir():
        files = sorted(Path(path).glob("*.json"))
        if not files:
            raise DataError(f"boxes folder {path} holds no .json files (expected HaGRID's <gesture>.json)")
        return {image: boxes for file in files for image, boxes in _read_boxes_file(file).items()}
    return _read_boxes_file(path)


def _read_boxes_file(path: Path | str) -> dict[str, list[Box]]:
    try:
        data = json.loads(sources.read_file(str(path)), parse_constant=_no_constant)
    except (OSError, ValueError) as exc:  # ValueError: JSONDecodeError, UnicodeDecodeError, _no_constant
        raise DataError(f"boxes file {path} could not be read as JSON: {exc}") from None
    except RecursionError:  # the decoder recurses once per level of nesting
        raise DataError(f"boxes file {path} is nested too deeply (expected boxes: a few levels)") from None
    if isinstance(data, dict):
        entries = [(str(key), value) for key, value in data.items()]
    elif isinstance(data, list) and all(
        isinstance(item, dict) and isinstance(item.get("image"), str) for item in data
    ):
        entries = [(item["image"], item) for item in data]
    else:
        raise DataError(
            f'boxes file {path}: expected HaGRID\'s {{image_id: {{"bboxes": [...]}}}} or a list of '
            '{"image": ..., "bboxes": [[x, y, w, h], ...]}'
        )
    return {image: _boxes(entry, f"{path} entry {image!r}") for image, entry in entries}


def _no_constant(name: str) -> None:
    raise ValueError(f"{name} is not a number JSON allows (expected coordinates in [0, 1])")


def _boxes(entry: Any, where: str) -> list[Box]:
    boxes = entry.get("bboxes") if isinstance(entry, dict) else None
    if not isinstance(boxes, list):
        raise DataError(f"{where}: expected a 'bboxes' list of [x, y, w, h]")
    for box in boxes:
        valid = isinstance(box, list) and len(box) == 4 and all(_coordinate(v) for v in box)
        if not valid or box[2] <= 0 or box[3] <= 0 or min(box) < 0 or max(box) > 1:
            raise DataError(
                f"{where}: box {reprlib.repr(box)} is not [x, y, w, h] in [0, 1] "
                "with a positive width and height"
            )
    return [tuple(float(v) for v in box) for box in boxes]  # type: ignore[misc]


def _coordinate(value: Any) -> bool:
    # bool is an int to Python, but true is no coordinate; NaN passes every comparison with 0 and 1 as false.
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def whole_image_note(targets: list[Target]) -> str | None:
    """What to tell the user of a hand-crop classifier when some images had no boxes (None: all had)."""
    whole = {target.image for target in targets if target.box is None}
    if not whole:
        return None
    images = len({target.image for target in targets})
    return (
        f"note: {len(whole)} of {images} images have no hand boxes, so each is classified as one crop of the "
        "whole image, which a hand-crop classifier was not trained on (its answers there are guesses): pass "
        "--boxes with HaGRID annotations (a <gesture>.json file or the annotations folder) or a JSON list of "
        "boxes"
    )


def targets_of(images: list[Path], boxes: dict[str, list[Box]] | None) -> list[Target]:
    """One target per box of each image (looked up by path, file name or stem, HaGRID's image id); an image
    without an entry, or any image when there are no boxes, is one whole-image target."""
    targets = []
    for image in images:
        found = None
        if boxes is not None:
            keys = (str(image), image.name, image.stem)
            found = next((boxes[key] for key in keys if key in boxes), None)
        targets += [Target(image, box) for box in found] if found is not None else [Target(image, None)]
    return targets


def predict(
    loaded: LoadedModel, targets: list[Target], *, device: torch.device, batch_size: int = 32, top_k: int = 1
) -> Iterator[dict[str, Any]]:
    """One record per target, in order: gesture, leading hand, their probabilities, and the top k gestures;
    an unreadable image's record holds the error instead."""
    pending: list[tuple[Target, torch.Tensor]] = []
    frames: dict[Path, torch.Tensor | str] = {}  # the image being cut (or why it cannot be read)
    for target in targets:
        if target.image not in frames:
            frames = {target.image: _read(target.image)}
        frame = frames[target.image]
        if isinstance(frame, str):
            yield from _run(loaded, pending, device, top_k)  # the targets before it come first
            pending = []
            yield {"image": str(target.image), "box": _list(target.box), "error": frame}
            continue
        pending.append((target, model_input(frame, target.box, loaded)))
        if len(pending) == batch_size:
            yield from _run(loaded, pending, device, top_k)
            pending = []
    if pending:
        yield from _run(loaded, pending, device, top_k)


def _read(image: Path) -> torch.Tensor | str:
    try:
        return read_frame(str(image))
    except UnreadableFrame as exc:
        return f"unreadable image: {exc}"


def model_input(frame: torch.Tensor, box: Box | None, loaded: LoadedModel) -> torch.Tensor:
    """What `loaded` sees of a frame: the whole frame letterboxed (a full-frame model), else the crop."""
    if loaded.full_frame:
        return letterbox(frame, (loaded.image_size[0], loaded.image_size[1]))
    return crop(frame, box, loaded.image_size)


def without_boxes(targets: list[Target]) -> list[Target]:
    """One whole-image target per image, in order: what a full-frame model predicts on whatever boxes say."""
    return [Target(image, None) for image in dict.fromkeys(target.image for target in targets)]


def crop(frame: torch.Tensor, box: Box | list[float] | None, image_size: list[int]) -> torch.Tensor:
    """The uint8 [3, H, W] model input for `box` of a [3, H, W] frame (None: the whole frame)."""
    _, height, width = frame.shape
    square = square_crop_box(box or WHOLE_IMAGE, width, height, scale=1.0)
    return resize_and_pad(crop_square(frame, square), (image_size[0], image_size[1]))


@torch.inference_mode()
def _run(
    loaded: LoadedModel, pending: list[tuple[Target, torch.Tensor]], device: torch.device, top_k: int
) -> Iterator[dict[str, Any]]:
    if not pending:
        return
    images = preprocess(torch.stack([crop for _, crop in pending]).to(device))
    outputs = loaded.model(images)
    gestures = outputs["gesture"].float().softmax(dim=1).cpu()
    hands = _leading_hands(outputs, len(pending))
    k = min(top_k, gestures.shape[1])
    for (target, _), gesture, hand in zip(pending, gestures, hands, strict=True):
        best, which = gesture.topk(k)
        record = {
            "image": str(target.image),
            "box": _list(target.box),
            "gesture": loaded.class_names[int(which[0])],
            "gesture_probability": round(float(best[0]), 6),
        }
        if hand is not None:
            record["leading_hand"] = LEADING_HANDS[int(hand.argmax())]
            record["leading_hand_probability"] = round(float(hand.max()), 6)
        record["top_k"] = [
            {"gesture": loaded.class_names[int(i)], "probability": round(float(p), 6)}
            for p, i in zip(best, which, strict=True)
        ]
        yield record


def _leading_hands(outputs: dict[str, torch.Tensor], count: int) -> list[torch.Tensor | None]:
    """Each item's leading-hand probabilities; None for each when the model has no such head (full frame)."""
    if "leading_hand" not in outputs:
        return [None] * count
    return list(outputs["leading_hand"].float().softmax(dim=1).cpu())


def _list(box: Box | None) -> list[float] | None:
    return list(box) if box is not None else None
