import pytest
import torch

from handgesture.models import ARCHITECTURES, build_model, preprocess


@pytest.mark.parametrize("name", sorted(ARCHITECTURES))
def test_each_architecture_has_two_heads(name):
    torch.manual_seed(0)
    model = build_model(name, num_classes=19, image_size=64).eval()
    with torch.no_grad():
        out = model(torch.randn(2, 3, 64, 64))
    assert out["gesture"].shape == (2, 19)
    assert out["leading_hand"].shape == (2, 2)


def test_freezed_trains_only_the_heads():
    model = build_model("ResNet18", num_classes=5, freezed=True)
    trainable = {n.split(".")[0] for n, p in model.named_parameters() if p.requires_grad}
    assert trainable == {"gesture_head", "leading_hand_head"}


def test_unknown_architecture_lists_the_known_ones():
    with pytest.raises(ValueError, match="ResNet18"):
        build_model("ResNet19", num_classes=3)


def test_pretrained_uses_torchvision_weights_api(monkeypatch):
    # Nothing can be downloaded here: check the real loading path asks torchvision for the DEFAULT weights.
    import torchvision

    asked = {}

    def fake_get_model(name, weights=None, **kwargs):
        asked["name"], asked["weights"] = name, weights
        return torchvision.models.resnet18()

    monkeypatch.setattr(torchvision.models, "get_model", fake_get_model)
    build_model("ResNet18", num_classes=3, pretrained=True)
    assert asked == {"name": "resnet18", "weights": torchvision.models.ResNet18_Weights.DEFAULT}


def test_preprocess_normalises_uint8():
    images = torch.full((1, 3, 2, 2), 255, dtype=torch.uint8)
    out = preprocess(images)
    assert out.dtype == torch.float32
    assert torch.allclose(out[0, 0], torch.full((2, 2), (1 - 0.485) / 0.229))
