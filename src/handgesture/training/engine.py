"""The training loop: fit / train_one_epoch / evaluate, free of I/O (hooks do the side effects)."""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from typing import Any

import torch
from torch import nn

from handgesture.cluster import SINGLE, Cluster
from handgesture.errors import DataError, InputError
from handgesture.full_frame import FullFrameClassifier
from handgesture.metrics import BEST_METRIC, HEADS, METRIC_NAMES, HeadMetrics, head_loss
from handgesture.models import preprocess
from handgesture.training.early_stopping import StopRule, StopState, early_stop, stop_reason

log = logging.getLogger(__name__)


class TrainingDiverged(InputError):
    """The loss is no longer a number: the settings diverge, and a retry would diverge again."""


@dataclass
class Progress:
    """Counters that say where training stands; `epoch` counts completed epochs."""

    epoch: int = 0
    position: int = 0  # samples already consumed in the current (incomplete) epoch
    global_step: int = 0
    best_metric: float = -1.0
    best_epoch: int = -1
    # The current epoch's running loss, so a mid-epoch resume reports the same epoch mean.
    epoch_loss_sum: float = 0.0
    epoch_batches: int = 0
    history: list[dict[str, float]] = field(default_factory=list)


class LossWindow:
    """The training loss of the steps since it was last read, summed on the device.

    Reading a device value (`.item()`) waits for the device to finish: once per step, that stalls a GPU's
    queue every step. So the loss is read every `log_every_n_steps` steps, at epoch ends and before each
    checkpoint (`settle`), never per step. The sum starts from the epoch's running sum and adds one step
    at a time in float64, the same additions a per-step read made, so resumed runs report identical losses.
    """

    def __init__(self) -> None:
        self.total: torch.Tensor | None = None
        self.steps = 0
        self.first_step = 0  # the global step of the window's first loss

    def add(self, loss: torch.Tensor, progress: Progress) -> None:
        if self.total is None:
            self.total = torch.tensor(progress.epoch_loss_sum, dtype=torch.float64, device=loss.device)
            self.first_step = progress.global_step
        self.total += loss.detach().double()
        self.steps += 1

    def drain(self, cluster: Cluster = SINGLE) -> tuple[float | None, int, int]:
        """(the epoch's running sum, steps, first step), or (None, 0, 0) when no step was added. In a
        data-parallel run, the ranks' mean: every rank adds the same steps, so all drain together."""
        if self.total is None:
            return None, 0, 0
        total, steps, first = cluster.mean(self.total).item(), self.steps, self.first_step  # the one sync
        self.total, self.steps = None, 0
        return total, steps, first


@dataclass
class Trainer:
    """Everything a step needs; built once by the caller, restored from a checkpoint when resuming."""

    model: nn.Module  # the model itself: what checkpoints hold and evaluation runs
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    scaler: torch.amp.GradScaler
    device: torch.device
    num_classes: int
    amp: bool = False
    metric_average: str = "weighted"
    metric_names: tuple[str, ...] = METRIC_NAMES
    progress: Progress = field(default_factory=Progress)
    log_every_n_steps: int = 10  # how often the loss is read from the device (and logged)
    losses: LossWindow = field(default_factory=LossWindow)
    skipped_images: int = 0  # unreadable training images met by this process
    finetune_skipped: list[str] = field(default_factory=list)  # tensors a fine-tune start re-initialised
    cluster: Cluster = SINGLE  # this rank among a data-parallel run's
    parallel_model: nn.Module | None = None  # the DistributedDataParallel wrapper training steps through
    # ReduceLROnPlateau: stepped once per epoch on the epoch's mean training loss, not per step.
    plateau: torch.optim.lr_scheduler.ReduceLROnPlateau | None = None
    stop_rule: StopRule = field(default_factory=StopRule)  # train_params.early_stopping
    stop: StopState = field(default_factory=StopState)

    @property
    def step_model(self) -> nn.Module:
        return self.parallel_model or self.model


def autocast_dtype(device: torch.device) -> torch.dtype:
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.bfloat16


@dataclass
class Hooks:
    """Side effects injected by the caller; every hook is optional. `on_step` gets the loss and learning
    rate on the steps that read the loss (every `log_every_n_steps`), None on the others."""

    on_step: Callable[[Progress, dict[str, float] | None], None] | None = None
    on_epoch_end: Callable[[Progress, dict[str, float], bool], None] | None = None


def model_heads(model: nn.Module) -> tuple[str, ...]:
    """The heads `model` outputs: HaGRID v2's full-frame classifiers have the gesture head alone, so their
    loss, metrics and confusion matrices are the gesture head's (no leading hand to score)."""
    return ("gesture",) if isinstance(model, FullFrameClassifier) else HEADS


def train_one_epoch(trainer: Trainer, batches: Iterable[dict], hooks: Hooks) -> float:
    """One pass over `batches` (already positioned after any samples seen before a resume)."""
    model, progress, world = trainer.step_model, trainer.progress, trainer.cluster.world_size
    heads = model_heads(trainer.model)
    model.train()
    for batch in batches:
        # Position counts sampled items, unreadable ones included, so a resume skips exactly these; in a
        # data-parallel run, every rank's (each reads a batch of the same size).
        progress.position += (batch["gesture"].numel() + int(batch["skipped"])) * world
        trainer.skipped_images += int(batch["skipped"])
        if batch["gesture"].numel() < 2:
            if trainer.cluster.distributed:
                raise DataError(_TOO_FEW_TO_STEP.format(rank=trainer.cluster.rank, step=progress.global_step))
            continue  # unreadable images left nothing, or one item, which BatchNorm cannot train on
        images, targets = _to_device(batch, trainer.device, heads)
        # One backward path: autocast and the scaler are no-ops when AMP is off.
        with torch.autocast(trainer.device.type, dtype=autocast_dtype(trainer.device), enabled=trainer.amp):
            outputs = model(images)
            loss = sum(head_loss(outputs[head].float(), targets[head]) for head in heads)
        trainer.optimizer.zero_grad(set_to_none=True)
        trainer.scaler.scale(loss).backward()
        trainer.scaler.step(trainer.optimizer)
        trainer.scaler.update()
        trainer.scheduler.step()
        trainer.losses.add(loss, progress)
        progress.global_step += 1
        values = None
        if progress.global_step % trainer.log_every_n_steps == 0:
            values = {"loss": settle(trainer), "lr": trainer.optimizer.param_groups[0]["lr"]}
        if hooks.on_step:
            hooks.on_step(progress, values)
    settle(trainer)
    return progress.epoch_loss_sum / max(progress.epoch_batches, 1)


def settle(trainer: Trainer) -> float | None:
    """Read the loss window into the progress counters (one device sync); the window's mean loss.

    A loss that is no number stops training here. Every checkpoint settles first (`TrainingState.dump`),
    so weights that a non-finite loss stepped into are never saved, let alone as the best."""
    progress = trainer.progress
    total, steps, first = trainer.losses.drain(trainer.cluster)
    if total is None:
        return None
    if not math.isfinite(total):
        raise TrainingDiverged(
            f"the training loss became {total} between steps {first + 1} and {first + steps} (epoch "
            f"{progress.epoch + 1}): lower optimizer.lr, or resume from an earlier checkpoint"
        )
    mean = (total - progress.epoch_loss_sum) / steps
    progress.epoch_loss_sum, progress.epoch_batches = total, progress.epoch_batches + steps
    return mean


# A step every rank takes or none does (the gradients are averaged across them).
_TOO_FEW_TO_STEP = (
    "rank {rank}'s batch after step {step} holds fewer than 2 readable images, and a data-parallel "
    "step cannot be skipped on one rank: remove the unreadable images the crop cache reported, or train "
    "on one device"
)

Observer = Callable[[dict, dict[str, torch.Tensor]], None]  # (the batch as loaded, the model's outputs)


@torch.no_grad()
def evaluate(trainer: Trainer, batches: Iterable[dict], observe: Observer | None = None) -> dict[str, Any]:
    """Weighted accuracy / F1 / precision / recall for each head the model has (`model_heads`), plus each
    head's confusion matrix (a one-head model's result has no leading-hand keys at all).

    The one evaluation pass: training's validation and test, promotion and `handgesture evaluate` all run
    it; `observe` sees each batch with its outputs (what an evaluation report picks its examples from)."""
    trainer.model.eval()
    heads = model_heads(trainer.model)
    classes = {"gesture": trainer.num_classes, "leading_hand": 2}
    metrics = {
        head: HeadMetrics(classes[head], trainer.device, trainer.metric_average, trainer.metric_names)
        for head in heads
    }
    skipped = 0
    for batch in batches:
        skipped += int(batch["skipped"])
        if batch["gesture"].numel() == 0:
            continue
        images, targets = _to_device(batch, trainer.device, heads)
        with torch.autocast(trainer.device.type, dtype=autocast_dtype(trainer.device), enabled=trainer.amp):
            outputs = trainer.model(images)
        for head in heads:
            metrics[head].update(outputs[head].float(), targets[head])
        if observe:
            observe(batch, {head: outputs[head].float() for head in heads})
    skipped = int(trainer.cluster.sum(torch.tensor(skipped, device=trainer.cluster.device)).item())
    result: dict[str, Any] = {"skipped_images": skipped}
    for head in heads:
        result.update({f"{head}/{name}": value for name, value in metrics[head].compute().items()})
    result["confusion_matrix"] = metrics["gesture"].confusion()
    if "leading_hand" in metrics:
        result["leading_hand_confusion_matrix"] = metrics["leading_hand"].confusion()
    return result


def _to_device(
    batch: dict, device: torch.device, heads: tuple[str, ...] = HEADS
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    non_blocking = device.type == "cuda"  # pinned host memory makes the copy asynchronous
    images = preprocess(batch["image"].to(device, non_blocking=non_blocking))
    if device.type == "cuda":
        images = images.contiguous(memory_format=torch.channels_last)
    targets = {head: batch[head].to(device, non_blocking=non_blocking) for head in heads}
    return images, targets


def fit(
    trainer: Trainer,
    epochs: int,
    train_batches: Callable[[int, int], Iterable[dict]],
    val_batches: Callable[[], Iterable[dict]],
    hooks: Hooks,
) -> dict[str, Any]:
    """Train from `trainer.progress` up to `epochs` completed epochs; returns the last validation metrics.

    `train_batches(epoch, position)` yields the epoch's batches starting after `position` samples, so a
    resumed run never replays or re-reads what it already saw.
    """
    progress = trainer.progress
    last: dict[str, Any] = {}
    if stays_stopped(trainer, epochs):
        return last
    for epoch in range(progress.epoch, epochs):
        train_loss = train_one_epoch(trainer, train_batches(epoch, progress.position), hooks)
        if trainer.plateau is not None:
            trainer.plateau.step(train_loss)
        last = evaluate(trainer, val_batches())
        last["train/loss"] = train_loss
        progress.epoch, progress.position = epoch + 1, 0
        progress.epoch_loss_sum, progress.epoch_batches = 0.0, 0
        improved = _record(progress, last)
        log.info(
            "epoch %d/%d: loss %.4f, val gesture F1 %.4f%s",
            epoch + 1,
            epochs,
            train_loss,
            last[BEST_METRIC],
            " (best so far)" if improved else "",
        )
        stop = _early_stop(trainer, epochs, last[BEST_METRIC])
        if hooks.on_epoch_end:  # after the rule: the epoch's checkpoint holds its decision
            hooks.on_epoch_end(progress, last, improved)
        if stop:
            break
    return last


def _early_stop(trainer: Trainer, epochs: int, metric: float) -> bool:
    epoch = trainer.progress.epoch
    trainer.stop, stop = early_stop(trainer.stop, trainer.stop_rule, epoch, float(metric))
    if stop:
        trainer.stop = replace(trainer.stop, stopped_epoch=epoch, stopped_under=epochs)
        log.info("%s", stop_reason(trainer.stop, trainer.stop_rule))
    return stop


def stays_stopped(trainer: Trainer, epochs: int) -> bool:
    """A run the rule stopped stays stopped when resumed with the same epochs; with more, it goes on."""
    state = trainer.stop
    if not state.stopped_epoch:
        return False
    if epochs > state.stopped_under:
        log.info("going on after an early stop at epoch %d: up to %d epochs now", state.stopped_epoch, epochs)
        trainer.stop = replace(state, stopped_epoch=0, stopped_under=0)
        return False
    log.info(
        "%s; it stays stopped: raise train_params.epochs above %d to go on",
        stop_reason(state, trainer.stop_rule),
        state.stopped_under,
    )
    return True


def _record(progress: Progress, metrics: dict[str, Any]) -> bool:
    scalars = {k: float(v) for k, v in metrics.items() if isinstance(v, int | float) and math.isfinite(v)}
    progress.history.append({"epoch": progress.epoch, **scalars})
    improved = metrics[BEST_METRIC] > progress.best_metric
    if improved:
        progress.best_metric, progress.best_epoch = float(metrics[BEST_METRIC]), progress.epoch
    return improved
