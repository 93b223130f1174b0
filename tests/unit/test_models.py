"""Models are HaGRID v1's classifier classes, module for module: the same state_dict keys and shapes (the list
in tests/fixtures, taken from hukenovs/hagrid's classes), and the same outputs as torchvision's own model
with the head swapped in."""

import json
import re
from pathlib import Path

import pytest
import torch
import torchvision
from torch import nn

from handgesture.models import ARCHITECTURES, build_model, preprocess

HAGRID_KEYS = json.loads((Path(__file__).parents[1] / "fixtures/hagrid_v1_state_dict_keys.json").read_text())


@pytest.mark.parametrize("name", sorted(ARCHITECTURES))
def test_state_dict_keys_and_shapes_are_hagrids(name):
    with torch.device("meta"):  # shapes without allocating ResNet152's weights
        model = build_model(name, num_classes=19)
    found = {key: list(tensor.shape) for key, tensor in model.state_dict().items()}
    assert found == HAGRID_KEYS["models"][name]
    assert list(found) == list(HAGRID_KEYS["models"][name])  # and in HaGRID's order


def _resnet_reference(model, net, head):
    names = {"0": "conv1", "1": "bn1", "4": "layer1", "5": "layer2", "6": "layer3", "7": "layer4"}
    state = {}
    for key, tensor in model.state_dict().items():
        match = re.match(r"backbone\.(\d+)\.(.*)", key)
        if match:
            state[f"{names[match[1]]}.{match[2]}"] = tensor
    net.fc = nn.Linear(net.fc.in_features, head[0].out_features)
    state |= {f"fc.{k.split('.', 1)[1]}": v for k, v in head.state_dict().items()}
    net.load_state_dict(state)


def _mobilenet_reference(model, net, head):
    state = {k.replace("backbone.0.", "features.", 1): v for k, v in model.state_dict().items()}
    state = {k: v for k, v in state.items() if k.startswith("features.")}
    net.classifier[3] = nn.Linear(net.classifier[3].in_features, head[3].out_features)
    state |= {f"classifier.{k}": v for k, v in head.state_dict().items()}
    net.load_state_dict(state)


def _vit_reference(model, net, head):
    state = {k.removeprefix("torchvision_model."): v for k, v in model.state_dict().items()}
    state = {
        k: v for k, v in state.items() if not k.startswith(("backbone.", "gesture_", "leading_", "heads."))
    }
    net.heads.head = nn.Linear(net.hidden_dim, head[0].out_features)
    state |= {f"heads.head.{k.split('.', 1)[1]}": v for k, v in head.state_dict().items()}
    net.load_state_dict(state)


REFERENCES = {"resnet": _resnet_reference, "resnext": _resnet_reference, "mobilenet": _mobilenet_reference}
REFERENCES["vit"] = _vit_reference
HEADS = {  # HaGRID's head module names: gesture, leading hand
    "resnet": ("classifier", "leading_hand"),
    "resnext": ("classifier", "leading_hand"),
    "mobilenet": ("gesture_classifier", "leading_hand_classifier"),
    "vit": ("gesture_classifier", "leading_hand_classifier"),
}


@pytest.mark.parametrize("name", sorted(ARCHITECTURES))
def test_outputs_equal_torchvisions_model_with_each_head(name):
    torch.manual_seed(0)
    size = 224 if name == "Vitb32" else 64  # ViT's position embeddings are HaGRID's, for 224 px
    model = build_model(name, num_classes=7, image_size=size).eval()
    images = torch.rand(2, 3, size, size)
    tv_name = ARCHITECTURES[name].torchvision_name
    family = re.match(r"[a-z]+", tv_name)[0]
    with torch.no_grad():
        ours = model(images)
        for output, head_name in zip(("gesture", "leading_hand"), HEADS[family], strict=True):
            net = torchvision.models.get_model(tv_name).eval()
            REFERENCES[family](model, net, getattr(model, head_name))
            torch.testing.assert_close(ours[output], net(images), rtol=1e-5, atol=1e-5)


def test_a_state_dict_moves_strictly_both_ways_through_a_file(tmp_path):
    first = build_model("MobileNetV3_small", num_classes=19, image_size=64)
    torch.save({"state_dict": first.state_dict()}, tmp_path / "best_model.pth")
    second = build_model("MobileNetV3_small", num_classes=19, image_size=64)
    state = torch.load(tmp_path / "best_model.pth", weights_only=True)["state_dict"]
    assert not second.load_state_dict(state, strict=True).missing_keys
    images = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(first.eval()(images), second.eval()(images), rtol=0, atol=0)


@pytest.mark.parametrize("name", sorted(ARCHITECTURES))
def test_freezed_trains_only_the_heads(name):
    with torch.device("meta"):
        model = build_model(name, num_classes=5, freezed=True)
    trainable = {n.split(".")[0] + "." for n, p in model.named_parameters() if p.requires_grad}
    assert trainable == set(ARCHITECTURES[name].heads)


def test_unknown_architecture_lists_the_known_ones():
    with pytest.raises(ValueError, match="ResNet18"):
        build_model("ResNet19", num_classes=3)


def test_pretrained_uses_torchvision_weights_api(monkeypatch):
    # Nothing can be downloaded here: check the real loading path asks torchvision for the DEFAULT weights.
    asked = {}

    def fake_get_model(name, weights=None, **kwargs):
        asked["name"], asked["weights"] = name, weights
        return torchvision.models.resnet18()

    monkeypatch.setattr(torchvision.models, "get_model", fake_get_model)
    build_model("ResNet18", num_classes=3, pretrained=True)
    assert asked == {"name": "resnet18", "weights": torchvision.models.ResNet18_Weights.DEFAULT}


def test_preprocess_is_hagrids_float_in_0_1_without_mean_or_std():
    images = torch.tensor([0, 51, 255], dtype=torch.uint8).view(1, 3, 1, 1)
    out = preprocess(images)
    assert out.dtype == torch.float32
    assert out.flatten().tolist() == pytest.approx([0.0, 0.2, 1.0])
