"""Schema-1 checkpoints (our layout before HaGRID's) are refused with the way forward, and converted by it."""

import pytest
import torch
import torch.nn.functional as F
import torchvision
from torch import nn

from handgesture.checkpoints.convert import IMAGENET_MEAN, IMAGENET_STD, convert_schema1
from handgesture.checkpoints.format import to_bytes
from handgesture.checkpoints.locate import resolve_checkpoint
from handgesture.cli import main
from handgesture.errors import CheckpointError
from handgesture.inference import load_model
from handgesture.models import build_model

CLASSES = ["like", "one", "palm", "no_gesture"]


def schema1(name: str, size: int):
    """A schema-1 model as it was: torchvision's network without its classifier, and two heads beside it."""
    torch.manual_seed(0)
    if name == "Vitb32":
        net = torchvision.models.vit_b_32(image_size=size)
        net.heads = nn.Identity()
        heads = [nn.Linear(768, n) for n in (len(CLASSES), 2)]
    elif name == "ResNet18":
        net = torchvision.models.resnet18()
        net.fc = nn.Identity()
        heads = [nn.Linear(512, n) for n in (len(CLASSES), 2)]
    else:
        net = torchvision.models.mobilenet_v3_small()
        net.classifier = nn.Identity()
        heads = [_mlp(len(CLASSES)), _mlp(2)]
    for module in (net, *heads):
        module.eval()
    for bn in (m for m in net.modules() if isinstance(m, nn.BatchNorm2d)):  # statistics other than identity
        bn.running_mean.uniform_(-0.5, 0.5)
        bn.running_var.uniform_(0.5, 2.0)
    state = {f"backbone.{k}": v for k, v in net.state_dict().items()}
    for prefix, head in zip(("gesture_head", "leading_hand_head"), heads, strict=True):
        state |= {f"{prefix}.{k}": v for k, v in head.state_dict().items()}
    checkpoint = {
        "schema_version": 1,
        "state_dict": state,
        "epoch": 2,
        "progress": {"epoch": 2},
        "model_name": name,
        "class_names": CLASSES,
        "image_size": [size, size],
    }
    return checkpoint, net, heads


def _mlp(outputs: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(576, 1024), nn.Hardswish(), nn.Dropout(0.2), nn.Linear(1024, outputs))


def normalised(images):
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    return (images - mean) / torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)


def test_a_schema_1_checkpoint_is_refused_naming_the_convert_command(tmp_path):
    checkpoint, _, _ = schema1("ResNet18", 32)
    (tmp_path / "old.pth").write_bytes(to_bytes(checkpoint))
    with pytest.raises(CheckpointError, match=r"schema-1 .* `handgesture convert .*old.pth NEW.pth`"):
        resolve_checkpoint(str(tmp_path / "old.pth"))


def test_vit_converts_exactly_with_the_hands_in_hagrids_order():
    checkpoint, net, (gesture, hand) = schema1("Vitb32", 64)
    model = build_model("Vitb32", len(CLASSES), image_size=64).eval()
    model.load_state_dict(convert_schema1(checkpoint, "old.pth")["state_dict"])
    images = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        features = net(normalised(images))
        new = model(images)
    torch.testing.assert_close(new["gesture"], gesture(features), rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(new["leading_hand"], hand(features).flip(1), rtol=1e-4, atol=1e-4)


STEMS = {  # the first convolution and its BatchNorm: (schema-1 names, HaGRID names)
    "ResNet18": (("backbone.conv1", "backbone.bn1"), ("backbone.0", "backbone.1")),
    "MobileNetV3_small": (
        ("backbone.features.0.0", "backbone.features.0.1"),
        ("backbone.0.0.0", "backbone.0.0.1"),
    ),
}


@pytest.mark.parametrize("name", sorted(STEMS))
def test_convolutional_stems_fold_the_normalisation_exactly_inside_the_padding(name):
    checkpoint, _, _ = schema1(name, 64)
    model = build_model(name, len(CLASSES), image_size=64).eval()
    model.load_state_dict(convert_schema1(checkpoint, "old.pth")["state_dict"])
    (old_conv, old_norm), (conv, norm) = STEMS[name]
    new_conv, new_norm = model.get_submodule(conv), model.get_submodule(norm)
    old = checkpoint["state_dict"]
    stats = {key: old[f"{old_norm}.{key}"] for key in ("running_mean", "running_var", "weight", "bias")}
    images = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        ours = new_norm(new_conv(images))
        convolved = F.conv2d(
            normalised(images), old[f"{old_conv}.weight"], stride=new_conv.stride, padding=new_conv.padding
        )
        theirs = F.batch_norm(convolved, **stats, eps=new_norm.eps)
    inner = (slice(None), slice(None), slice(2, -2), slice(2, -2))  # outside the padded ring
    torch.testing.assert_close(ours[inner], theirs[inner], rtol=1e-4, atol=1e-4)


def test_the_convert_command_writes_a_checkpoint_that_loads(tmp_path, capsys):
    checkpoint, _, _ = schema1("MobileNetV3_small", 32)
    (tmp_path / "old.pth").write_bytes(to_bytes(checkpoint))
    assert main(["convert", str(tmp_path / "old.pth"), str(tmp_path / "new.pth")]) == 0
    loaded = load_model(str(tmp_path / "new.pth"))
    assert (loaded.model_name, loaded.class_names, loaded.epoch) == ("MobileNetV3_small", CLASSES, 2)
    assert main(["convert", str(tmp_path / "new.pth"), str(tmp_path / "again.pth")]) == 2
    assert "not a schema-1 checkpoint" in capsys.readouterr().err


def _convert(tmp_path, checkpoint, capsys) -> tuple[int, str]:
    (tmp_path / "old.pth").write_bytes(to_bytes(checkpoint))
    status = main(["convert", str(tmp_path / "old.pth"), str(tmp_path / "new.pth")])
    return status, capsys.readouterr().err


def test_a_heads_only_file_is_refused_instead_of_getting_a_random_backbone(tmp_path, capsys):
    checkpoint, _, _ = schema1("ResNet18", 32)
    checkpoint["state_dict"] = {k: v for k, v in checkpoint["state_dict"].items() if "_head." in k}
    status, err = _convert(tmp_path, checkpoint, capsys)
    assert status == 2 and not (tmp_path / "new.pth").exists()
    assert str(tmp_path / "old.pth") in err and "not in the file" in err and "backbone.0.weight" in err


def test_tensors_with_no_place_in_the_new_model_are_refused_not_dropped(tmp_path, capsys):
    checkpoint, _, _ = schema1("MobileNetV3_small", 32)
    checkpoint["state_dict"]["backbone.avgpool.extra"] = torch.zeros(3)  # maps onto no HaGRID name
    checkpoint["state_dict"]["gesture_head.9.weight"] = torch.zeros(3)  # maps onto a name the model lacks
    status, err = _convert(tmp_path, checkpoint, capsys)
    assert status == 2 and not (tmp_path / "new.pth").exists()
    assert str(tmp_path / "old.pth") in err and "no place" in err
    assert "backbone.avgpool.extra" in err and "gesture_head.9.weight" in err


@pytest.mark.parametrize("key", ["model_name", "class_names", "image_size"])
def test_a_file_without_what_the_model_is_built_from_is_one_error_naming_the_key(tmp_path, capsys, key):
    checkpoint, _, _ = schema1("ResNet18", 32)
    del checkpoint[key]
    status, err = _convert(tmp_path, checkpoint, capsys)
    assert status == 2 and not (tmp_path / "new.pth").exists()
    assert str(tmp_path / "old.pth") in err and repr(key) in err and "Traceback" not in err
