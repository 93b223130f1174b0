"""Checkpoints and configs as HaGRID's classifier (and the tutorial's copy of it) writes them."""

from pathlib import Path

import torch
from omegaconf import OmegaConf

from handgesture.metrics import HEADS, head_loss
from handgesture.models import build_model

FIXTURES = Path(__file__).parent / "fixtures"
HAGRID_CONFIG = FIXTURES / "hagrid_classifier_default.yaml"
TUTORIAL_CONFIG = FIXTURES / "tutorial_default.yaml"


def hagrid_config(**changes) -> dict:
    """HaGRID's config as its checkpoints hold it (OmegaConf.to_container of the YAML), with `changes`."""
    config = OmegaConf.to_container(OmegaConf.load(HAGRID_CONFIG))
    for dotted, value in changes.items():
        *parents, key = dotted.split(".")
        node = config
        for parent in parents:
            node = node[parent]
        node[key] = value
    return config


def write_hagrid_checkpoint(
    path: Path, name: str, *, epoch: int, config: dict, steps: int = 6, size: int = 32
):
    """What HaGRID's save_checkpoint writes after `steps` SGD steps under its LinearLR warm-up; returns the
    model, so a test can compare outputs."""
    torch.manual_seed(1)
    model = build_model(name, len(config["dataset"]["targets"]), image_size=size)
    optimizer = torch.optim.SGD(model.parameters(), lr=config["optimizer"]["lr"], momentum=0.9)
    warmup = torch.optim.lr_scheduler.LinearLR(
        optimizer, start_factor=config["scheduler"]["start_factor"], total_iters=min(1000, steps - 1)
    )
    for _ in range(steps):
        outputs = model(torch.rand(4, 3, size, size))
        loss = sum(head_loss(outputs[head], torch.randint(0, 2, (4,))) for head in HEADS)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        warmup.step()
    state = {
        "state_dict": model.state_dict(),
        "optimizer_state_dict": optimizer.state_dict(),
        "epoch": epoch,
        "config": config,
    }
    torch.save(state, path)
    return model.eval()
