"""HaGRID v2's full-frame classifiers: the whole frame in, one gesture out.

Each is torchvision's network of that name with `num_classes=N` outputs. Its `state_dict` is torchvision's
key for key (`fc.weight`, `classifier.3.weight`, ...), so it loads with `strict=True` into
`torchvision.models.get_model(name, num_classes=N)`. VitB16 is v2's wrapper, the torchvision ViT held as
`hagrid_model`, so its keys start with `hagrid_model.`.

The module tree is v2's `ClassifierModel`: the network sits in an attribute `hagrid_model`. HaGRID v2's
single-GPU trainer saves that tree as it is (`hagrid_model.fc.weight`), its data-parallel trainer the
network alone (`fc.weight`); `v2_model_state` gives the first form, which v2's trainer loads.

Like every model here it takes float RGB in [0, 1]; v2's mean/std normalisation happens inside, in buffers
that are not saved, so the state_dict stays torchvision's.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import torch
import torchvision
from torch import nn

log = logging.getLogger(__name__)

V2_MEAN = (0.54, 0.499, 0.474)
V2_STD = (0.234, 0.235, 0.231)
V2_PAD_VALUE = 144  # v2 letterboxes each frame with this grey (PadIfNeeded value=[144, 144, 144])
WRAPPER = "hagrid_model."  # v2's ClassifierModel holds the network under this name


@dataclass(frozen=True)
class FullFrameArchitecture:
    torchvision_name: str
    head: str  # the saved state_dict prefix of the layer whose rows are the classes
    patch: int = 0  # ViT: pixels per patch side (its position embeddings fix the input size)


FULL_FRAME_ARCHITECTURES: dict[str, FullFrameArchitecture] = {
    "ResNet18": FullFrameArchitecture("resnet18", "fc."),
    "ResNet152": FullFrameArchitecture("resnet152", "fc."),
    "MobileNetV3_small": FullFrameArchitecture("mobilenet_v3_small", "classifier.3."),
    "MobileNetV3_large": FullFrameArchitecture("mobilenet_v3_large", "classifier.3."),
    "ConvNeXt_base": FullFrameArchitecture("convnext_base", "classifier.2."),
    "VitB16": FullFrameArchitecture("vit_b_16", "hagrid_model.heads.head.", patch=16),
}


class VitB16(nn.Module):
    """v2's ViT wrapper: torchvision's vit_b_16 as `hagrid_model`, its head sized for the gestures (zeroed,
    as torchvision initialises it)."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.hagrid_model = net

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.hagrid_model(images)


class FullFrameClassifier(nn.Module):
    """A v2 network with one gesture head, normalising its [0, 1] input as v2 does.

    A state_dict hook pair drops the `hagrid_model.` of this wrapper on saving and adds it on loading, so
    files speak torchvision's keys while the module tree stays v2's.
    """

    def __init__(self, net: nn.Module):
        super().__init__()
        self.hagrid_model = net
        self.register_buffer("mean", torch.tensor(V2_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(V2_STD).view(1, 3, 1, 1), persistent=False)
        self.register_state_dict_post_hook(_drop_wrapper)
        self.register_load_state_dict_pre_hook(_add_wrapper)

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"gesture": self.hagrid_model((images - self.mean) / self.std)}


def _drop_wrapper(module, state_dict, prefix, local_metadata) -> None:
    for key in [key for key in state_dict if key.startswith(prefix + WRAPPER)]:
        state_dict[prefix + key[len(prefix + WRAPPER) :]] = state_dict.pop(key)


def _add_wrapper(module, state_dict, prefix, *args) -> None:
    for key in [key for key in state_dict if key.startswith(prefix)]:
        state_dict[prefix + WRAPPER + key[len(prefix) :]] = state_dict.pop(key)


def build_full_frame(
    name: str, num_classes: int, *, pretrained: bool = False, freezed: bool = False, image_size: int = 224
) -> FullFrameClassifier:
    """v2's model `name` with `num_classes` outputs. `pretrained`: torchvision's ImageNet weights under a
    new head; `freezed`: only the head trains."""
    arch = FULL_FRAME_ARCHITECTURES[name]
    net = _network(arch, num_classes, pretrained, image_size)
    model = FullFrameClassifier(VitB16(net) if name == "VitB16" else net)
    if freezed:
        for key, parameter in model.named_parameters():
            parameter.requires_grad_(key.removeprefix(WRAPPER).startswith(arch.head))
    return model


def _network(arch: FullFrameArchitecture, num_classes: int, pretrained: bool, image_size: int) -> nn.Module:
    kwargs = {"image_size": 224 if pretrained else image_size} if arch.patch else {}
    if not pretrained:
        return torchvision.models.get_model(
            arch.torchvision_name, weights=None, num_classes=num_classes, **kwargs
        )
    weights = torchvision.models.get_model_weights(arch.torchvision_name).DEFAULT
    log.info("loading pretrained %s weights %s", arch.torchvision_name, weights)
    net = torchvision.models.get_model(arch.torchvision_name, weights=weights, **kwargs)
    _replace_head(net, arch.head.removeprefix(WRAPPER).removesuffix("."), num_classes)
    return net


def _replace_head(net: nn.Module, path: str, num_classes: int) -> None:
    """Swap the ImageNet output layer at `path` (`fc`, `classifier.3`, `heads.head`) for a new one."""
    parent_path, _, name = path.rpartition(".")
    parent = net.get_submodule(parent_path) if parent_path else net
    old = parent.get_submodule(name)
    head = nn.Linear(old.in_features, num_classes)
    if path == "heads.head":  # v2 zeroes its ViT head, as torchvision does for a new one
        nn.init.zeros_(head.weight)
        nn.init.zeros_(head.bias)
    parent.register_module(name, head)


def head_keys(name: str, keys) -> list[str]:
    """The keys among `keys` (as saved) that belong to the gesture head of `name`."""
    head = FULL_FRAME_ARCHITECTURES[name].head
    return [key for key in keys if key.startswith(head)]


def v2_model_state(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Our saved full-frame state_dict as HaGRID v2's single-GPU trainer saves and loads it (the same
    tensors, each key under `hagrid_model.`)."""
    return {WRAPPER + key: tensor for key, tensor in state_dict.items()}


def vit_image_size(state_dict: dict[str, torch.Tensor], patch: int) -> int:
    """The input size a ViT's position embeddings were made for (patches + the class token)."""
    tokens = state_dict[f"{WRAPPER}encoder.pos_embedding"].shape[1] - 1
    return patch * round(tokens**0.5)
