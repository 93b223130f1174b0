"""Builds what a run trains with from a Config: the device, seeds, and the trainer (model, optimizer,
scheduler, grad scaler). The loaders are `handgesture.data.loaders`."""

from __future__ import annotations

import random

import numpy as np
import torch
from torch import nn

from handgesture.cluster import SINGLE, Cluster
from handgesture.config import Config, OptimizerConfig, SchedulerConfig
from handgesture.models import build_model
from handgesture.training.early_stopping import StopRule
from handgesture.training.engine import Trainer


def pick_device(name: str) -> torch.device:
    """`auto` picks cuda, then mps, then cpu."""
    if name != "auto":
        return torch.device(name)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def seed_everything(seed: int, deterministic: bool) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.backends.cudnn.benchmark = not deterministic
    torch.use_deterministic_algorithms(deterministic, warn_only=True)


def global_batch_size(config: Config, cluster: Cluster) -> int:
    """Samples per optimizer step: the per-device batch on every rank."""
    return config.train_params.train_batch_size * cluster.world_size


def rank_device(config: Config, local_rank: int) -> torch.device:
    """A data-parallel rank's device: its own GPU (by local rank) when the run is on CUDA, else the CPU."""
    device = pick_device(config.device)
    return torch.device("cuda", local_rank) if device.type == "cuda" else torch.device("cpu")


def build_trainer(
    config: Config, device: torch.device, steps_per_epoch: int, cluster: Cluster = SINGLE
) -> Trainer:
    model = build_model(
        config.model.name,
        len(config.dataset.targets),
        pretrained=config.model.pretrained,
        freezed=config.model.freezed,
        image_size=config.dataset.image_size[0],
        full_frame=config.model.full_frame,
    )
    if cluster.distributed and config.train_params.sync_bn:
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)  # same state_dict keys: checkpoints unchanged
    model = model.to(device)
    if device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
    opt = config.optimizer
    optimizer = build_optimizer(opt, [p for p in model.parameters() if p.requires_grad])
    amp = config.train_params.amp and device.type == "cuda"
    fp16 = amp and not torch.cuda.is_bf16_supported()
    return Trainer(
        model=model,
        optimizer=optimizer,
        scheduler=_scheduler(config, optimizer, steps_per_epoch),
        scaler=torch.amp.GradScaler(device.type, enabled=fp16),
        device=device,
        num_classes=len(config.dataset.targets),
        amp=amp,
        metric_average=config.metric_params.average,
        metric_names=tuple(config.metric_params.metrics),
        log_every_n_steps=config.train_params.log_every_n_steps,
        cluster=cluster,
        plateau=_plateau(config.scheduler, optimizer),
        stop_rule=StopRule(
            config.train_params.early_stopping.epochs, config.train_params.early_stopping.metric
        ),
    )


def build_optimizer(opt: OptimizerConfig, parameters: list) -> torch.optim.Optimizer:
    """SGD with momentum (HaGRID's), or Adam / AdamW, whose first beta is `optimizer.momentum`."""
    if opt.optimizer == "SGD":
        return torch.optim.SGD(parameters, lr=opt.lr, momentum=opt.momentum, weight_decay=opt.weight_decay)
    adam = torch.optim.Adam if opt.optimizer == "Adam" else torch.optim.AdamW
    return adam(parameters, lr=opt.lr, betas=(opt.momentum, 0.999), weight_decay=opt.weight_decay)


def _scheduler(config: Config, optimizer, steps_per_epoch: int):
    """Linear warm-up per step as HaGRID's classifier does, then `scheduler.name`'s schedule, stepped per
    step too (ReduceLROnPlateau is stepped per epoch instead: `_plateau`)."""
    sched, lr_scheduler = config.scheduler, torch.optim.lr_scheduler
    warmup_steps = max(1, sched.warmup_steps)
    warmup = lr_scheduler.LinearLR(optimizer, start_factor=sched.start_factor, total_iters=warmup_steps)
    if sched.schedule == "CosineAnnealingLR":
        total = max(warmup_steps + 1, config.train_params.epochs * steps_per_epoch)
        cosine = lr_scheduler.CosineAnnealingLR(optimizer, T_max=total - warmup_steps)
        return lr_scheduler.SequentialLR(optimizer, [warmup, cosine], milestones=[warmup_steps])
    if sched.schedule == "StepLR":
        # Chained with the warm-up, not after it: the decays fall on epoch ends whatever the warm-up's length.
        step = lr_scheduler.StepLR(optimizer, step_size=sched.step_size * steps_per_epoch, gamma=sched.gamma)
        return lr_scheduler.ChainedScheduler([warmup, step], optimizer)
    return warmup


def _plateau(sched: SchedulerConfig, optimizer) -> torch.optim.lr_scheduler.ReduceLROnPlateau | None:
    if sched.schedule != "ReduceLROnPlateau":
        return None
    return torch.optim.lr_scheduler.ReduceLROnPlateau(
        optimizer,
        mode=sched.mode,
        factor=sched.factor,
        patience=sched.patience,
        threshold=sched.threshold,
        threshold_mode=sched.threshold_mode,
        cooldown=sched.cooldown,
        min_lr=sched.min_lr,
    )
