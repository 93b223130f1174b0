"""HaGRID v2's full-frame classifiers: torchvision's layout key for key, v2's normalisation inside."""

import pytest
import torch
import torchvision

from handgesture.config import Config
from handgesture.config_checks import validate
from handgesture.errors import ConfigError
from handgesture.full_frame import FULL_FRAME_ARCHITECTURES, V2_MEAN, V2_STD, VitB16, v2_model_state
from handgesture.models import build_model, detect_layout, head_tensors, layout_problems


def _torchvision(name: str, num_classes: int) -> torch.nn.Module:
    net = torchvision.models.get_model(
        FULL_FRAME_ARCHITECTURES[name].torchvision_name, num_classes=num_classes
    )
    return VitB16(net) if name == "VitB16" else net  # v2's ViT wrapper: torchvision's ViT as hagrid_model


@pytest.mark.parametrize("name", ["ResNet18", "MobileNetV3_small"])
def test_weights_load_strictly_into_torchvision_and_give_the_same_logits(name):
    torch.manual_seed(0)
    ours = build_model(name, 7, full_frame=True).eval()
    theirs = _torchvision(name, 7).eval()
    theirs.load_state_dict(ours.state_dict(), strict=True)
    frames = torch.rand(2, 3, 96, 96)  # float RGB in [0, 1], as every model here takes
    normalised = (frames - torch.tensor(V2_MEAN).view(1, 3, 1, 1)) / torch.tensor(V2_STD).view(1, 3, 1, 1)
    with torch.no_grad():
        torch.testing.assert_close(ours(frames)["gesture"], theirs(normalised))


@pytest.mark.parametrize("name", list(FULL_FRAME_ARCHITECTURES))
def test_every_architecture_has_torchvisions_layout_and_is_recognised(name):
    with torch.device("meta"):
        ours = build_model(name, 34, full_frame=True).state_dict()
        theirs = _torchvision(name, 34)
    assert layout_problems(theirs, ours) == []
    assert set(ours) == set(theirs.state_dict())
    layout = detect_layout(ours)
    assert (layout.name, layout.num_classes, layout.full_frame) == (name, 34, True)
    assert (
        head_tensors(name, ours, full_frame=True) == [k for k in ours if k.endswith(("weight", "bias"))][-2:]
    )


def test_vit_keys_are_v2s_wrapper_layout():
    with torch.device("meta"):
        keys = list(build_model("VitB16", 34, full_frame=True).state_dict())
    assert all(key.startswith("hagrid_model.") for key in keys)
    assert "hagrid_model.heads.head.weight" in keys


def test_v2_trainer_form_loads_into_v2s_module_tree():
    """v2's single-GPU trainer saves and loads its ClassifierModel: the network under `hagrid_model.`."""
    ours = build_model("ResNet18", 5, full_frame=True)

    class ClassifierModel(torch.nn.Module):  # v2's tree: the network as an attribute
        def __init__(self):
            super().__init__()
            self.hagrid_model = _torchvision("ResNet18", 5)

    saved = ours.state_dict()
    state = v2_model_state(saved)
    ClassifierModel().load_state_dict(state, strict=True)
    assert all(state[f"hagrid_model.{key}"] is tensor for key, tensor in saved.items())  # stored once


def test_a_wrapped_model_saves_under_its_own_prefix():
    """Nested in another module (as data-parallel training nests it), the hooks keep the outer prefix."""
    outer = torch.nn.Sequential(build_model("ResNet18", 5, full_frame=True))
    keys = set(outer.state_dict())
    assert "0.fc.weight" in keys and not any(
        ".hagrid_model." in key or key.startswith("0.hagrid") for key in keys
    )
    torch.nn.Sequential(build_model("ResNet18", 5, full_frame=True)).load_state_dict(outer.state_dict())


def test_freezed_trains_only_the_head():
    model = build_model("MobileNetV3_small", 5, full_frame=True, freezed=True)
    trainable = [name for name, p in model.named_parameters() if p.requires_grad]
    assert trainable == ["hagrid_model.classifier.3.weight", "hagrid_model.classifier.3.bias"]


def test_an_architecture_of_the_other_kind_is_refused_naming_both_keys():
    config = Config()
    config.model.name, config.model.full_frame = "ConvNeXt_base", False
    with pytest.raises(
        ConfigError, match=r"model.name='ConvNeXt_base' is not a hand-crop.*model.full_frame=true"
    ):
        validate(config)
    config.model.name, config.model.full_frame = "Vitb32", True
    with pytest.raises(ConfigError, match=r"not a full-frame architecture.*VitB16"):
        validate(config)
    config.model.name = "ResNet18"
    validate(config)


def test_the_command_line_refuses_it_with_status_2_and_writes_nothing(tmp_path, capsys):
    from handgesture_cli.main import main

    runs = tmp_path / "runs"
    argv = ["train", "--epochs", "1", f"storage.uri={runs}", "model.full_frame=true", "model.name=ResNext50"]
    assert main(argv) == 2
    [line] = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("error: ") and "model.name='ResNext50' is not a full-frame architecture" in line
    assert not runs.exists()
