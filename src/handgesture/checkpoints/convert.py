"""Schema 1 -> 2: our checkpoints from before HaGRID's layout, rewritten into it (`handgesture convert`).

Schema 1 named modules after torchvision (`backbone.conv1`, `gesture_head`, ...), fed ImageNet-normalised
input and ordered the leading hand left=0, right=1. Converting renames every tensor, swaps the leading-hand
rows, and folds the normalisation into the first layer, so the new model takes HaGRID's [0, 1] input and gives
the old outputs: exactly for Vitb32 (no padding), and for the convolutional models everywhere but the one
pixel ring the first convolution pads (zeros were the mean colour before, black now). The optimizer, scheduler
and RNG states follow the old layout and are dropped: resuming from the result continues its epoch count with
a fresh optimizer, as from a HaGRID checkpoint.
"""

from __future__ import annotations

import re
from typing import Any

import torch

from handgesture.checkpoints.format import SCHEMA_VERSION
from handgesture.errors import CheckpointError
from handgesture.models import ARCHITECTURES, build_model, layout_problems

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
_RESNET_STEM = {"conv1": "0", "bn1": "1", "layer1": "4", "layer2": "5", "layer3": "6", "layer4": "7"}
# Per family: the new name of an old key, the leading-hand output layer, the first convolution and the
# BatchNorm after it (None: the convolution has a bias of its own).
_FAMILIES = {
    "resnet": ("leading_hand.0", "backbone.0", "backbone.1"),
    "mobilenet": ("leading_hand_classifier.3", "backbone.0.0.0", "backbone.0.0.1"),
    "vit": ("leading_hand_classifier.0", "torchvision_model.conv_proj", None),
}
# Tensors of the new model that schema 1 never saved, so they stay as built: ViT's unused ImageNet head.
_NOT_SAVED = {"resnet": (), "mobilenet": (), "vit": ("torchvision_model.heads.",)}
_SHOWN = 6  # tensor names an error lists


def convert_schema1(checkpoint: dict[str, Any], source: str) -> dict[str, Any]:
    """The schema-2 checkpoint of the schema-1 `checkpoint` read from `source`."""
    if checkpoint.get("schema_version") != 1:
        raise CheckpointError(
            f"{source} is not a schema-1 checkpoint (schema {checkpoint.get('schema_version')})"
        )
    name, classes, size = _shape_of(checkpoint, source)
    family = _family(name)
    model = build_model(name, len(classes), image_size=size)
    state = _renamed(checkpoint["state_dict"], family, model.state_dict(), f"{source} to a {name}")
    problems = layout_problems(model, state)
    if problems:
        raise CheckpointError(f"{source}: its tensors do not map onto a {name}: {'; '.join(problems)}")
    hand_layer, conv, norm = _FAMILIES[family]
    for suffix in ("weight", "bias"):  # left=0, right=1 -> HaGRID's right=0, left=1
        state[f"{hand_layer}.{suffix}"] = state[f"{hand_layer}.{suffix}"].flip(0)
    _fold_normalisation(state, conv, norm)
    progress = dict(checkpoint.get("progress") or {"epoch": checkpoint.get("epoch", 0)})
    keep = ("epoch", "metrics", "config", "model_name", "class_names", "image_size", "lineage")
    converted = {key: checkpoint[key] for key in keep if key in checkpoint}
    lineage = {**converted.get("lineage", {}), "parent": source}
    return {
        **converted,
        "schema_version": SCHEMA_VERSION,
        "state_dict": state,
        "progress": progress,
        "lineage": lineage,
        "converted_from": source,
    }


def _shape_of(checkpoint: dict[str, Any], source: str) -> tuple[str, list[str], int]:
    """Model name, class names and image side: what the new model is built from, each checked first."""
    name, classes, size = (checkpoint.get(key) for key in ("model_name", "class_names", "image_size"))
    if not isinstance(name, str):
        raise _missing(source, "model_name", f"a model name, one of {list(ARCHITECTURES)}")
    if not isinstance(classes, list) or not classes or not all(isinstance(c, str) for c in classes):
        raise _missing(source, "class_names", "a list of class names")
    if not isinstance(size, list | tuple) or not size or not isinstance(size[0], int):
        raise _missing(source, "image_size", "[height, width] in pixels")
    if not isinstance(checkpoint.get("state_dict"), dict):
        raise _missing(source, "state_dict", "a dict of tensors")
    return name, classes, size[0]


def _missing(source: str, key: str, expected: str) -> CheckpointError:
    return CheckpointError(f"{source}: schema-1 checkpoint without a usable {key!r} (expected {expected})")


def _renamed(old_state: dict, family: str, built: dict[str, torch.Tensor], what: str) -> dict:
    """The schema-1 tensors under their new names. Every tensor is accounted for both ways: one the new
    model lacks would be dropped, and one the file lacks would stay random (a heads-only file would convert
    into a random backbone)."""
    state, unknown = {}, []
    for old, tensor in old_state.items():
        names = _new_names(family, old)
        if not isinstance(tensor, torch.Tensor) or not names or any(new not in built for new in names):
            unknown.append(old)
            continue
        state.update({new: tensor.clone() for new in names})
    missing = [k for k in built if k not in state and not k.startswith(_NOT_SAVED[family])]
    problems = []
    if unknown:
        problems.append(f"{len(unknown)} tensors of the file have no place in it ({_some(unknown)})")
    if missing:
        problems.append(f"{len(missing)} of its tensors are not in the file ({_some(missing)})")
    if problems:
        raise CheckpointError(f"cannot convert {what}: {'; '.join(problems)}; nothing was written")
    return {**built, **state}  # the tensors never saved stay as built


def _some(names: list[str]) -> str:
    return ", ".join(sorted(names)[:_SHOWN]) + (", ..." if len(names) > _SHOWN else "")


def _family(name: str) -> str:
    if name not in ARCHITECTURES:
        raise CheckpointError(
            f"schema-1 checkpoint of an unknown model {name!r}: expected one of {list(ARCHITECTURES)}"
        )
    return re.match(r"[a-z]+", ARCHITECTURES[name].torchvision_name)[0].replace("resnext", "resnet")


def _new_names(family: str, old: str) -> list[str]:
    head = re.match(r"(gesture|leading_hand)_head\.(.*)", old)
    if head:
        return [_head_name(family, head[1], head[2])]
    rest = old.removeprefix("backbone.")
    if family == "resnet":
        module, _, tail = rest.partition(".")
        return [f"backbone.{_RESNET_STEM[module]}.{tail}"] if module in _RESNET_STEM else []
    if family == "mobilenet":
        return [f"backbone.0.{rest.removeprefix('features.')}"] if rest.startswith("features.") else []
    names = [f"torchvision_model.{rest}"]  # vit: the encoder is saved under both names, as HaGRID does
    return names + ([f"backbone.0.{rest.removeprefix('encoder.')}"] if rest.startswith("encoder.") else [])


def _head_name(family: str, head: str, tail: str) -> str:
    if family == "resnet":
        return f"{'classifier' if head == 'gesture' else 'leading_hand'}.0.{tail}"
    prefix = f"{head}_classifier"
    return f"{prefix}.{tail}" if family == "mobilenet" else f"{prefix}.0.{tail}"


def _fold_normalisation(state: dict[str, torch.Tensor], conv: str, norm: str | None) -> None:
    """conv((x - mean) / std) == conv'(x) + shift: scale the weights, move the shift into the bias or the
    BatchNorm's running mean."""
    weight = state[f"{conv}.weight"].double()
    mean = torch.tensor(IMAGENET_MEAN, dtype=torch.float64).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, dtype=torch.float64).view(1, 3, 1, 1)
    scaled = weight / std
    shift = -(scaled * mean).sum(dim=(1, 2, 3))
    state[f"{conv}.weight"] = scaled.to(state[f"{conv}.weight"].dtype)
    if norm is None:
        state[f"{conv}.bias"] = (state[f"{conv}.bias"].double() + shift).to(state[f"{conv}.bias"].dtype)
    else:
        running = state[f"{norm}.running_mean"]
        state[f"{norm}.running_mean"] = (running.double() - shift).to(running.dtype)
