"""Architecture registry: torchvision backbones, each with a gesture head and a leading-hand head.

Names are the ones HaGRID's classifier and the tutorial use (`ResNet18`, `MobileNetV3_small`, ...).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torchvision
from torch import nn

from handgesture.labels import LEADING_HANDS

log = logging.getLogger(__name__)

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class Architecture:
    torchvision_name: str
    # Replaces the backbone's own classifier with Identity and returns the feature width.
    strip_classifier: Callable[[nn.Module], int]
    # MobileNetV3 keeps its hidden classifier layer (with dropout) in each head, as HaGRID does.
    head_hidden: int | None = None


def _strip_fc(net: nn.Module) -> int:
    width = net.fc.in_features
    net.fc = nn.Identity()
    return width


def _strip_mobilenet(net: nn.Module) -> int:
    width = net.classifier[0].in_features
    net.classifier = nn.Identity()
    return width


def _strip_vit(net: nn.Module) -> int:
    width = net.heads.head.in_features
    net.heads = nn.Identity()
    return width


ARCHITECTURES: dict[str, Architecture] = {
    "ResNet18": Architecture("resnet18", _strip_fc),
    "ResNext50": Architecture("resnext50_32x4d", _strip_fc),
    "ResNext101": Architecture("resnext101_32x8d", _strip_fc),
    "ResNet152": Architecture("resnet152", _strip_fc),
    "MobileNetV3_small": Architecture("mobilenet_v3_small", _strip_mobilenet, head_hidden=1024),
    "MobileNetV3_large": Architecture("mobilenet_v3_large", _strip_mobilenet, head_hidden=1280),
    "Vitb32": Architecture("vit_b_32", _strip_vit),
}


class GestureClassifier(nn.Module):
    """A backbone producing features, and two linear (or MLP) heads on top of them."""

    def __init__(self, backbone: nn.Module, width: int, num_classes: int, head_hidden: int | None):
        super().__init__()
        self.backbone = backbone
        self.gesture_head = _head(width, num_classes, head_hidden)
        self.leading_hand_head = _head(width, len(LEADING_HANDS), head_hidden)

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        features = self.backbone(images)
        return {"gesture": self.gesture_head(features), "leading_hand": self.leading_hand_head(features)}


def _head(width: int, outputs: int, hidden: int | None) -> nn.Module:
    if hidden is None:
        return nn.Linear(width, outputs)
    return nn.Sequential(
        nn.Linear(width, hidden), nn.Hardswish(), nn.Dropout(0.2), nn.Linear(hidden, outputs)
    )


def build_model(
    name: str, num_classes: int, *, pretrained: bool = False, freezed: bool = False, image_size: int = 224
) -> GestureClassifier:
    """Build `name` with two heads; `pretrained` loads torchvision's default ImageNet weights."""
    if name not in ARCHITECTURES:
        raise ValueError(
            f"model.name {name!r} is not a known architecture; expected one of {list(ARCHITECTURES)}"
        )
    arch = ARCHITECTURES[name]
    backbone = _build_backbone(arch.torchvision_name, pretrained, image_size)
    width = arch.strip_classifier(backbone)
    if freezed:
        for parameter in backbone.parameters():
            parameter.requires_grad_(False)
    return GestureClassifier(backbone, width, num_classes, arch.head_hidden)


def _build_backbone(torchvision_name: str, pretrained: bool, image_size: int) -> nn.Module:
    kwargs: dict = {}
    if torchvision_name.startswith("vit"):
        # ViT's position embeddings are sized for one input size; pretrained weights need 224.
        kwargs["image_size"] = 224 if pretrained else image_size
    if pretrained:
        weights = torchvision.models.get_model_weights(torchvision_name).DEFAULT
        log.info("loading pretrained %s weights %s", torchvision_name, weights)
        return torchvision.models.get_model(torchvision_name, weights=weights, **kwargs)
    return torchvision.models.get_model(torchvision_name, weights=None, **kwargs)


def preprocess(images: torch.Tensor) -> torch.Tensor:
    """uint8 [B,3,H,W] -> ImageNet-normalised float, done on the training device to keep batches small."""
    mean = torch.tensor(IMAGENET_MEAN, device=images.device).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=images.device).view(1, 3, 1, 1)
    return (images.float() / 255.0 - mean) / std
