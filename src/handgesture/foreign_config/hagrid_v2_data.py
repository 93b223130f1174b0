"""HaGRID v2's data and model keys: `dataset.*`, the transform blocks and `model.*` (the table is in the
package's docstring)."""

from __future__ import annotations

from typing import Any

from handgesture.foreign_config.layer import Layer, close
from handgesture.full_frame import V2_MEAN, V2_PAD_VALUE, V2_STD

V2_NORMALISATION = "the full-frame models normalise with v2's own, inside the model"
STANDARD_TRANSFORMS = ("LongestMaxSize", "PadIfNeeded", "Normalize", "ToTensorV2")


def map_v2_data(layer: Layer) -> None:
    _dataset(layer)
    for block in ("train_transforms", "val_transforms", "test_transforms"):
        _transforms(layer, block)
    _model(layer)


def _dataset(layer: Layer) -> None:
    block = layer.data.get("dataset")
    if not isinstance(block, dict):
        return
    for theirs, ours in (("train", "annotations"), ("val", "val_annotations"), ("test", "test_annotations")):
        if f"annotations_{theirs}" in block:
            layer.put(f"dataset.{ours}", block.pop(f"annotations_{theirs}"))
    keys = [f"dataset_{split}" for split in ("train", "val", "test") if f"dataset_{split}" in block]
    folders = [block.pop(key) for key in keys]
    if len({str(folder) for folder in folders}) > 1:
        layer.refuse(
            "dataset.dataset_train|dataset_val|dataset_test",
            "they name different folders; this pipeline reads one images folder (dataset.dataset)",
        )
    elif folders:
        layer.put("dataset.dataset", folders[0])
    if "img_size" in block:
        _image_size(layer, block.pop("img_size"))
    for key, expected in (("img_mean", list(V2_MEAN)), ("img_std", list(V2_STD))):
        if key in block and not close(block.pop(key), expected):
            layer.refuse(
                f"dataset.{key}", f"only v2's default {list(expected)} is accepted: {V2_NORMALISATION}"
            )
    if block.pop("one_class", False) is not False:
        layer.refuse("dataset.one_class=true", "this pipeline classifies dataset.targets, not hand/no hand")


def _image_size(layer: Layer, size: Any) -> None:
    if isinstance(size, int) and not isinstance(size, bool):
        layer.put("dataset.image_size", [size, size])
    elif isinstance(size, list) and len(size) == 2:
        layer.put("dataset.image_size", size)
    else:
        layer.refuse("dataset.img_size", "expected one side (square) or [height, width]")


def _transforms(layer: Layer, block_name: str) -> None:
    block = layer.pop_block(block_name)
    if block is None:
        return
    for name, args in block.items():
        args = args if isinstance(args, dict) else {}
        if name not in STANDARD_TRANSFORMS:
            layer.refuse(
                f"{block_name}.{name}",
                f"this pipeline applies only v2's standard chain {', '.join(STANDARD_TRANSFORMS)}",
            )
        elif args.get("p", 1) != 1:
            layer.refuse(f"{block_name}.{name}.p", "the standard chain is applied to every image (p: 1)")
        else:
            _standard_transform(layer, f"{block_name}.{name}", args)


def _standard_transform(layer: Layer, key: str, args: dict[str, Any]) -> None:
    size = (layer.data.get("dataset") or {}).get("image_size")
    sides = [args[arg] for arg in ("max_size", "min_height", "min_width") if arg in args]
    if sides and size is None and len(set(sides)) == 1:
        layer.put("dataset.image_size", [sides[0], sides[0]])
    elif sides and (size is None or any(side != max(size) for side in sides)):
        layer.refuse(key, "its size differs from dataset.img_size: this pipeline fits images to img_size")
    for arg, expected in (("mean", list(V2_MEAN)), ("std", list(V2_STD))):
        if arg in args and not close(args[arg], expected):
            layer.refuse(
                f"{key}.{arg}", f"only v2's default {list(expected)} is accepted: {V2_NORMALISATION}"
            )
    _padding(layer, key, args)


def _padding(layer: Layer, key: str, args: dict[str, Any]) -> None:
    """PadIfNeeded's fill (`value` in older albumentations, `fill` in newer) and border mode: the
    letterbox pads with v2's constant grey."""
    for arg in ("value", "fill"):
        fill = args.get(arg, V2_PAD_VALUE)
        fill = fill if isinstance(fill, list) else [fill] * 3
        if not close(fill, [V2_PAD_VALUE] * 3):
            layer.refuse(f"{key}.{arg}", f"the letterbox pads with v2's {[V2_PAD_VALUE] * 3} only")
    if args.get("border_mode", 0) != 0:
        layer.refuse(f"{key}.border_mode", "the letterbox pads with a constant (border_mode 0) only")


def _model(layer: Layer) -> None:
    model = layer.data.get("model")
    if not isinstance(model, dict):
        return
    if model.pop("pretrained_backbone", False) is not False:
        layer.refuse(
            "model.pretrained_backbone=true", "v2's classifiers do not read it; use model.pretrained"
        )
