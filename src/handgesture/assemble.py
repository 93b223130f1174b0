"""Builds what a run needs from a Config: device, data loaders, model, optimizer, scheduler, scaler."""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np
import torch

from handgesture.config import Config
from handgesture.data.annotations import AnnotationSet, read_annotations, split_by_user
from handgesture.data.dataset import EpochSampler, HandCropDataset, make_loader
from handgesture.engine import Trainer
from handgesture.models import build_model
from handgesture.prepare import crop_cache

log = logging.getLogger(__name__)


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


@dataclass
class DataBundle:
    train_batches: Callable[[int, int], Iterable[dict]]
    val_batches: Callable[[], Iterable[dict]]
    test_batches: Callable[[], Iterable[dict]] | None
    train_size: int
    val_size: int
    missing_images: int


def build_data(config: Config, device: torch.device) -> DataBundle:
    ds, params = config.dataset, config.train_params
    found = read_annotations(ds.annotations, ds.dataset, ds.targets, ds.subset)
    train, val = split_by_user(found.samples, config.random_state, ds.val_fraction)
    size = (ds.image_size[0], ds.image_size[1])
    crops = _crop_dataset_factory(config, found.samples, size, ds.annotations)
    loader_args = {
        "num_workers": params.num_workers,
        "prefetch_factor": params.prefetch_factor,
        "pin_memory": device.type == "cuda",
        "persistent_workers": params.num_workers > 0,
    }
    sampler = EpochSampler(len(train), config.random_state, shuffle=True)
    # BatchNorm fails on a training batch of 1, hence drop_last.
    train_loader = make_loader(
        crops(train, True),
        batch_size=params.train_batch_size,
        sampler=sampler,
        drop_last=True,
        **loader_args,
    )
    # Its own generator, so creating loader iterators never draws from the global RNG that dropout uses.
    train_loader.generator = torch.Generator().manual_seed(config.random_state)

    def train_batches(epoch: int, position: int) -> Iterable[dict]:
        sampler.set_epoch(epoch, start=position)
        return train_loader

    return DataBundle(
        train_batches=train_batches,
        val_batches=_eval_batches(crops(val, False), params.test_batch_size, loader_args),
        test_batches=_test_batches(config, size, loader_args),
        train_size=len(train),
        val_size=len(val),
        missing_images=found.missing_images,
    )


def _crop_dataset_factory(config: Config, samples, size, annotations: str) -> Callable:
    """(samples, train) -> dataset: crops from the crop cache of ``samples`` (prepared once, keyed by their
    content), or from the full frames when `dataset.cache_dir` is null."""
    cache = crop_cache(config, samples, annotations)
    if cache is None:
        return lambda subset, train: HandCropDataset(subset, size, train=train)
    return lambda subset, train: cache.dataset(subset, train=train)


def _eval_batches(dataset, batch_size: int, loader_args: dict) -> Callable[[], Iterable[dict]]:
    sampler = EpochSampler(len(dataset), seed=0, shuffle=False)
    loader = make_loader(dataset, batch_size=batch_size, sampler=sampler, **loader_args)
    loader.generator = torch.Generator().manual_seed(0)
    return lambda: loader


def _test_batches(config: Config, size, loader_args: dict) -> Callable[[], Iterable[dict]] | None:
    if not config.dataset.test_annotations:
        return None
    found: AnnotationSet = read_annotations(
        config.dataset.test_annotations, config.dataset.dataset, config.dataset.targets, config.dataset.subset
    )
    test_set = _crop_dataset_factory(config, found.samples, size, config.dataset.test_annotations)(
        found.samples, False
    )
    return _eval_batches(test_set, config.train_params.test_batch_size, loader_args)


def build_trainer(config: Config, device: torch.device, steps_per_epoch: int) -> Trainer:
    model = build_model(
        config.model.name,
        len(config.dataset.targets),
        pretrained=config.model.pretrained,
        freezed=config.model.freezed,
        image_size=config.dataset.image_size[0],
    ).to(device)
    if device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
    opt = config.optimizer
    optimizer = torch.optim.SGD(
        [p for p in model.parameters() if p.requires_grad],
        lr=opt.lr,
        momentum=opt.momentum,
        weight_decay=opt.weight_decay,
    )
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
    )


def _scheduler(config: Config, optimizer, steps_per_epoch: int):
    """Linear warm-up per step as HaGRID's classifier does, then optional cosine decay."""
    sched = config.scheduler
    warmup_steps = max(1, sched.warmup_steps)
    warmup = torch.optim.lr_scheduler.LinearLR(
        optimizer, start_factor=sched.start_factor, total_iters=warmup_steps
    )
    if not sched.cosine:
        return warmup
    total = max(warmup_steps + 1, config.train_params.epochs * steps_per_epoch)
    cosine = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=total - warmup_steps)
    return torch.optim.lr_scheduler.SequentialLR(optimizer, [warmup, cosine], milestones=[warmup_steps])
