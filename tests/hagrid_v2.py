"""HaGRID v2's training snapshots as its trainer (hukenovs/hagrid, custom_utils/train_utils.py) writes and
reads them, mimicked with v2's module tree: `ClassifierModel` holds the torchvision network as
`hagrid_model`, and its single-GPU `state_dict()` is what `_save_snapshot` saves."""

from pathlib import Path

import torch
import torchvision
from torch import nn

from handgesture.full_frame import V2_MEAN, V2_STD
from handgesture.labels import HAGRID_V2_TARGETS

V2_TORCHVISION = {"MobileNetV3_small": "mobilenet_v3_small", "ResNet18": "resnet18"}
V2_LR = 0.1  # the rate v2's optimizer starts at; its plateau reduces it once, to V2_LR * 0.1


class ClassifierModel(nn.Module):
    """v2's classifier tree (models/classifiers/base_model.py): the network as `hagrid_model`."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.hagrid_model = net

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.hagrid_model(images)


def v2_model(name: str = "MobileNetV3_small", num_classes: int = len(HAGRID_V2_TARGETS)) -> ClassifierModel:
    return ClassifierModel(torchvision.models.get_model(V2_TORCHVISION[name], num_classes=num_classes))


def v2_normalise(images: torch.Tensor) -> torch.Tensor:
    """v2's Normalize on [0, 1] RGB: what its model is fed (ours normalises inside)."""
    return (images - torch.tensor(V2_MEAN).view(1, 3, 1, 1)) / torch.tensor(V2_STD).view(1, 3, 1, 1)


def v2_training(model: ClassifierModel, steps: int = 3, size: int = 32):
    """v2's optimizer and ReduceLROnPlateau after `steps` SGD steps and two epochs' plateau steps, the
    second one worse, so the rate has been reduced once and SGD holds momentum buffers."""
    torch.manual_seed(1)
    optimizer = torch.optim.SGD(model.parameters(), lr=V2_LR, momentum=0.9, weight_decay=1e-4)
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, mode="min", factor=0.1, patience=0)
    classes = model.hagrid_model.state_dict()[_head(model)].shape[0]
    for _ in range(steps):
        logits = model(v2_normalise(torch.rand(4, 3, size, size)))
        loss = nn.functional.cross_entropy(logits, torch.randint(0, classes, (4,)))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    for epoch_loss in (1.0, 2.0):  # v2 steps its plateau once per epoch on the training loss
        scheduler.step(epoch_loss)
    return optimizer, scheduler


def _head(model: ClassifierModel) -> str:
    return [key for key in model.hagrid_model.state_dict() if key.endswith("weight")][-1]


def write_v2_snapshot(
    path: Path,
    name: str = "MobileNetV3_small",
    *,
    epochs_run: int = 4,
    metric=0.5,
    multi_gpu: bool = False,
    num_classes: int = len(HAGRID_V2_TARGETS),
    **replace,
) -> ClassifierModel:
    """What v2's `_save_snapshot` writes (`replace` swaps snapshot keys, None drops one); returns the
    model in eval mode."""
    model = v2_model(name, num_classes)
    optimizer, scheduler = v2_training(model)
    snapshot = {
        "MODEL_STATE": model.hagrid_model.state_dict() if multi_gpu else model.state_dict(),
        "OPTIMIZER_STATE": optimizer.state_dict(),
        "SCHEDULER_STATE": scheduler.state_dict(),
        "EPOCHS_RUN": epochs_run,
        "Loss": 0.75,
        "Metric": {"F1Score": metric},
    }
    snapshot.update(replace)
    torch.save({k: v for k, v in snapshot.items() if v is not None or k == "SCHEDULER_STATE"}, path)
    return model.eval()


def v2_load_snapshot(path: Path, name: str = "MobileNetV3_small", num_classes: int = 34) -> dict:
    """v2's `_load_snapshot`, step for step, on a fresh v2 set-up: strict model load, optimizer and
    ReduceLROnPlateau state; returns its model, optimizer, scheduler and counters."""
    model = v2_model(name, num_classes)
    optimizer = torch.optim.SGD(model.parameters(), lr=V2_LR, momentum=0.9, weight_decay=1e-4)
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, mode="min", factor=0.1)
    snapshot = torch.load(path, map_location="cpu")  # v2 loads without weights_only
    model.load_state_dict(snapshot["MODEL_STATE"])
    optimizer.load_state_dict(snapshot["OPTIMIZER_STATE"])
    scheduler.load_state_dict(snapshot["SCHEDULER_STATE"])
    return {
        "model": model.eval(),
        "optimizer": optimizer,
        "scheduler": scheduler,
        "epochs_run": snapshot["EPOCHS_RUN"],
        "best": (snapshot["EPOCHS_RUN"], snapshot["Loss"], snapshot["Metric"]),
    }
