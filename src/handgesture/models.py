"""Architecture registry: torchvision backbones with a gesture head and a leading-hand head, laid out
module for module as HaGRID v1's classifier classes (hukenovs/hagrid, classifier/models/), so a `state_dict`
moves between HaGRID, the tutorial and this pipeline with `strict=True` and gives the same outputs.

Input is HaGRID's: float RGB in [0, 1], no mean/std normalisation (`preprocess`). With `full_frame`, the
architectures are HaGRID v2's full-frame classifiers instead (`handgesture.full_frame`): one gesture head,
torchvision's layout, v2's normalisation inside the model.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torchvision
from torch import nn

from handgesture.full_frame import FULL_FRAME_ARCHITECTURES, build_full_frame, head_keys, vit_image_size
from handgesture.labels import LEADING_HANDS

log = logging.getLogger(__name__)


class ResNetClassifier(nn.Module):
    """HaGRID's ResNet / ResNext: `backbone` (conv1 .. avgpool), heads `classifier` and `leading_hand`."""

    def __init__(self, net: nn.Module, num_classes: int):
        super().__init__()
        self.backbone = nn.Sequential(
            net.conv1,
            net.bn1,
            net.relu,
            net.maxpool,
            net.layer1,
            net.layer2,
            net.layer3,
            net.layer4,
            net.avgpool,
        )
        width = net.fc.in_features
        self.classifier = nn.Sequential(nn.Linear(width, num_classes))
        self.leading_hand = nn.Sequential(nn.Linear(width, len(LEADING_HANDS)))

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        features = torch.flatten(self.backbone(images), 1)
        return {"gesture": self.classifier(features), "leading_hand": self.leading_hand(features)}


class MobileNetV3Classifier(nn.Module):
    """HaGRID's MobileNetV3: `backbone` (features, avgpool), two MLP heads with torchvision's hidden layer."""

    def __init__(self, net: nn.Module, num_classes: int, hidden: int):
        super().__init__()
        self.backbone = nn.Sequential(net.features, net.avgpool)
        width = net.classifier[0].in_features
        self.gesture_classifier = _mlp_head(width, hidden, num_classes)
        self.leading_hand_classifier = _mlp_head(width, hidden, len(LEADING_HANDS))

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        features = torch.flatten(self.backbone(images), 1)
        return {
            "gesture": self.gesture_classifier(features),
            "leading_hand": self.leading_hand_classifier(features),
        }


def _mlp_head(width: int, hidden: int, outputs: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Linear(width, hidden), nn.Hardswish(), nn.Dropout(p=0.2, inplace=True), nn.Linear(hidden, outputs)
    )


class VitClassifier(nn.Module):
    """HaGRID's Vit: the whole torchvision ViT as `torchvision_model` (its unused ImageNet head included) and
    its encoder again as `backbone`, so each encoder tensor is saved under both names, as HaGRID saves it."""

    def __init__(self, net: nn.Module, num_classes: int):
        super().__init__()
        self.torchvision_model = net
        self.backbone = nn.Sequential(net.encoder)
        self.gesture_classifier = nn.Sequential(nn.Linear(net.hidden_dim, num_classes))
        self.leading_hand_classifier = nn.Sequential(nn.Linear(net.hidden_dim, len(LEADING_HANDS)))

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        net = self.torchvision_model
        tokens = net._process_input(images)
        tokens = torch.cat([net.class_token.expand(tokens.shape[0], -1, -1), tokens], dim=1)
        features = self.backbone(tokens)[:, 0]
        return {
            "gesture": self.gesture_classifier(features),
            "leading_hand": self.leading_hand_classifier(features),
        }


@dataclass(frozen=True)
class Architecture:
    torchvision_name: str
    build: Callable[[nn.Module, int], nn.Module]  # (torchvision model, classes) -> our two-headed model
    heads: tuple[str, ...]  # the state_dict prefixes of the two heads (what a fine-tune may re-initialise)


ARCHITECTURES: dict[str, Architecture] = {
    "ResNet18": Architecture("resnet18", ResNetClassifier, ("classifier.", "leading_hand.")),
    "ResNext50": Architecture("resnext50_32x4d", ResNetClassifier, ("classifier.", "leading_hand.")),
    "ResNext101": Architecture("resnext101_32x8d", ResNetClassifier, ("classifier.", "leading_hand.")),
    "ResNet152": Architecture("resnet152", ResNetClassifier, ("classifier.", "leading_hand.")),
    "MobileNetV3_small": Architecture(
        "mobilenet_v3_small",
        lambda net, n: MobileNetV3Classifier(net, n, hidden=1024),
        ("gesture_classifier.", "leading_hand_classifier."),
    ),
    "MobileNetV3_large": Architecture(
        "mobilenet_v3_large",
        lambda net, n: MobileNetV3Classifier(net, n, hidden=1280),
        ("gesture_classifier.", "leading_hand_classifier."),
    ),
    "Vitb32": Architecture("vit_b_32", VitClassifier, ("gesture_classifier.", "leading_hand_classifier.")),
}


def build_model(
    name: str,
    num_classes: int,
    *,
    pretrained: bool = False,
    freezed: bool = False,
    image_size: int = 224,
    full_frame: bool = False,
) -> nn.Module:
    """Build `name` with two heads (with `full_frame`: v2's full-frame classifier, one head); `pretrained`
    loads torchvision's default ImageNet weights."""
    known = architectures(full_frame)
    if name not in known:
        kind = "full-frame (model.full_frame=true)" if full_frame else "hand-crop"
        raise ValueError(
            f"model.name {name!r} is not a known {kind} architecture; expected one of {list(known)}"
        )
    if full_frame:
        return build_full_frame(
            name, num_classes, pretrained=pretrained, freezed=freezed, image_size=image_size
        )
    arch = ARCHITECTURES[name]
    net = _torchvision_model(arch.torchvision_name, pretrained, image_size)
    if freezed:  # as HaGRID does: the backbone's parameters are frozen, the heads are new and train
        for parameter in net.parameters():
            parameter.requires_grad_(False)
    return arch.build(net, num_classes)


def _torchvision_model(torchvision_name: str, pretrained: bool, image_size: int) -> nn.Module:
    kwargs: dict = {}
    if torchvision_name.startswith("vit"):
        # ViT's position embeddings are sized for one input size; pretrained weights need 224.
        kwargs["image_size"] = 224 if pretrained else image_size
    if pretrained:
        weights = torchvision.models.get_model_weights(torchvision_name).DEFAULT
        log.info("loading pretrained %s weights %s", torchvision_name, weights)
        return torchvision.models.get_model(torchvision_name, weights=weights, **kwargs)
    return torchvision.models.get_model(torchvision_name, weights=None, **kwargs)


def architectures(full_frame: bool) -> dict:
    """The architectures by name: HaGRID v1's hand-crop classifiers, or v2's full-frame ones."""
    return FULL_FRAME_ARCHITECTURES if full_frame else ARCHITECTURES


def head_tensors(name: str, keys, full_frame: bool = False) -> list[str]:
    """The keys among `keys` that belong to the heads of architecture `name`."""
    if full_frame:
        return head_keys(name, keys)
    heads = ARCHITECTURES[name].heads
    return [key for key in keys if key.startswith(heads)]


def preprocess(images: torch.Tensor) -> torch.Tensor:
    """uint8 [B,3,H,W] -> float in [0, 1], HaGRID's input (no mean/std), on the training device."""
    return images.float() / 255.0


@dataclass(frozen=True)
class Layout:
    """What a state_dict's keys and shapes say it is."""

    name: str
    num_classes: int
    image_size: int  # ViT's position embeddings fix it; convolutional models take any size (224 reported)
    full_frame: bool = False  # HaGRID v2's full-frame layout (torchvision's keys, one head)


# The gesture head's output layer, by architecture family: its rows are the classes.
_GESTURE_OUTPUT = {ResNetClassifier: "classifier.0", MobileNetV3Classifier: "gesture_classifier.3"}
_GESTURE_OUTPUT[VitClassifier] = "gesture_classifier.0"


def detect_layout(state_dict: dict[str, torch.Tensor]) -> Layout | None:
    """The architecture whose HaGRID layout (v1's hand-crop or v2's full-frame) `state_dict` matches key for
    key and shape for shape; None if none does. Candidates are built on the meta device: shapes only, no
    memory, milliseconds."""
    return _crop_layout(state_dict) or _full_frame_layout(state_dict)


def _full_frame_layout(state_dict: dict[str, torch.Tensor]) -> Layout | None:
    keys = set(state_dict)
    for name, arch in FULL_FRAME_ARCHITECTURES.items():
        head = f"{arch.head}weight"
        if head not in keys:
            continue
        num_classes = state_dict[head].shape[0]
        image_size = vit_image_size(state_dict, arch.patch) if arch.patch else 224
        with torch.device("meta"):
            template = build_full_frame(name, num_classes, image_size=image_size)
        if not layout_problems(template, state_dict):
            return Layout(name, num_classes, image_size, full_frame=True)
    return None


def _crop_layout(state_dict: dict[str, torch.Tensor]) -> Layout | None:
    keys = set(state_dict)
    for name in ARCHITECTURES:
        with torch.device("meta"):
            template = build_model(name, 2)
        if set(template.state_dict()) != keys:
            continue
        output = _GESTURE_OUTPUT[type(template)]
        num_classes = state_dict[f"{output}.weight"].shape[0]
        image_size = _vit_image_size(state_dict) if isinstance(template, VitClassifier) else 224
        with torch.device("meta"):
            template = build_model(name, num_classes, image_size=image_size)
        if not layout_problems(template, state_dict):
            return Layout(name, num_classes, image_size)
    return None


def _vit_image_size(state_dict: dict[str, torch.Tensor]) -> int:
    tokens = state_dict["torchvision_model.encoder.pos_embedding"].shape[1] - 1  # patches + the class token
    return 32 * round(tokens**0.5)


def layout_problems(model: nn.Module, state_dict: dict[str, torch.Tensor], limit: int = 4) -> list[str]:
    """Why `state_dict` would not load strictly into `model`, in a few short lines (empty: it would)."""
    own = {key: tuple(tensor.shape) for key, tensor in model.state_dict().items()}
    theirs = {key: tuple(tensor.shape) for key, tensor in state_dict.items()}
    problems = []
    for what, keys in (("missing", own.keys() - theirs.keys()), ("unexpected", theirs.keys() - own.keys())):
        if keys:
            problems.append(f"{len(keys)} {what} keys (e.g. {', '.join(sorted(keys)[:limit])})")
    shared = sorted(own.keys() & theirs.keys())
    wrong = [f"{key} {theirs[key]} where {own[key]} is expected" for key in shared if own[key] != theirs[key]]
    if wrong:
        problems.append(f"{len(wrong)} tensors of another shape (e.g. {'; '.join(wrong[:limit])})")
    return problems


def describe_keys(state_dict: dict[str, torch.Tensor]) -> str:
    """A short description of a state_dict's layout: its size and top-level module names."""
    tops = sorted({key.split(".")[0] for key in state_dict})
    return f"{len(state_dict)} tensors under {', '.join(tops[:8])}"
