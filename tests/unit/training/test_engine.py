"""The training step reads nothing back from the device per step: the loss is read every
`log_every_n_steps` steps, at the epoch's end and before a checkpoint, and sums as a per-step read would."""

import pytest
import torch

from handgesture.config import load_config
from handgesture.training.engine import Hooks, TrainingDiverged, settle, train_one_epoch
from handgesture.training.setup import build_trainer


def tiny_trainer(log_every: int):
    config = load_config(
        "configs/demo.yaml",
        [
            "model.name=MobileNetV3_small",
            "dataset.image_size=[32,32]",
            f"train_params.log_every_n_steps={log_every}",
        ],
    )
    torch.manual_seed(0)
    return build_trainer(config, torch.device("cpu"), steps_per_epoch=25)


def batches(count: int, size: int = 4) -> list[dict]:
    generator = torch.Generator().manual_seed(1)
    return [
        {
            "image": torch.randint(0, 256, (size, 3, 32, 32), dtype=torch.uint8, generator=generator),
            "gesture": torch.randint(0, 19, (size,), generator=generator),
            "leading_hand": torch.randint(0, 2, (size,), generator=generator),
            "skipped": 0,
        }
        for _ in range(count)
    ]


class ItemCounter:
    """Counts `Tensor.item()` calls: each is a device sync on a GPU."""

    def __init__(self, monkeypatch):
        self.calls, original = 0, torch.Tensor.item

        def counted(tensor):
            self.calls += 1
            return original(tensor)

        monkeypatch.setattr(torch.Tensor, "item", counted)


def test_the_loss_is_read_every_log_every_n_steps_and_once_at_the_epoch_end(monkeypatch):
    trainer = tiny_trainer(log_every=10)
    logged = []
    counter = ItemCounter(monkeypatch)
    mean = train_one_epoch(
        trainer, batches(25), Hooks(on_step=lambda progress, values: logged.append(values))
    )
    assert counter.calls == 3  # after steps 10 and 20, and the epoch's last 5
    assert [i + 1 for i, values in enumerate(logged) if values] == [10, 20]
    assert trainer.progress.epoch_batches == 25 and mean == pytest.approx(
        trainer.progress.epoch_loss_sum / 25
    )


def test_the_epoch_loss_is_the_sum_a_per_step_read_makes():
    trainer, reference = tiny_trainer(log_every=7), tiny_trainer(log_every=1)
    for each in (trainer, reference):
        torch.manual_seed(2)  # the same dropout masks
        train_one_epoch(each, batches(20), Hooks())
    assert trainer.progress.epoch_loss_sum == reference.progress.epoch_loss_sum  # bit for bit


def test_a_non_finite_loss_stops_at_the_next_read_naming_the_steps():
    trainer = tiny_trainer(log_every=10)
    train_one_epoch(trainer, batches(3), Hooks())
    trainer.losses.add(torch.tensor(float("nan")), trainer.progress)
    with pytest.raises(TrainingDiverged, match=r"became nan between steps 4 and 4 \(epoch 1\)"):
        settle(trainer)
