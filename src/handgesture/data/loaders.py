"""The loaders a run reads: training (resumable, seeded), validation (the person split) and test.

Built from what the prepare-data step prepared (`PreparedData`), so a run opens the prepared caches instead of
reading the annotations and keying the caches again. In a data-parallel run each rank's loaders read its
shard (`Cluster`).

`HANDGESTURE_SAMPLE_TRACE=<folder>` makes each rank append, per training batch, a line
``<epoch> <dataset index> ...`` to ``<folder>/rank-<r>.txt`` (and write its pid to ``rank-<r>.pid``): what
every rank trained on, for checking that a resume neither replays nor skips a sample.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import torch

from handgesture.cluster import SINGLE, Cluster
from handgesture.config import Config
from handgesture.data.annotations import split_by_user
from handgesture.data.dataset import EpochSampler, make_loader
from handgesture.data.prepare import PreparedData, open_split

Batches = Callable[[], Iterable[dict]]


@dataclass
class DataBundle:
    train_batches: Callable[
        [int, int], Iterable[dict]
    ]  # (epoch, position) -> that epoch's batches from there
    val_batches: Batches
    test_batches: Batches | None
    train_size: int
    val_size: int
    missing_images: int
    notes: list[str]  # what reading the data skipped, besides missing images


def build_data(
    config: Config, device: torch.device, prepared: PreparedData, cluster: Cluster = SINGLE
) -> DataBundle:
    ds, params = config.dataset, config.train_params
    split = open_split(config, prepared.splits["train"])
    train, val = split_by_user(split.samples, config.random_state, ds.val_fraction)
    loader_args = _loader_args(config, device)
    sampler = EpochSampler(
        len(train),
        config.random_state,
        shuffle=True,
        rank=cluster.rank,
        world=cluster.world_size,
        batch_size=params.train_batch_size,
    )
    # BatchNorm fails on a training batch of 1, hence drop_last.
    train_loader = make_loader(
        split.dataset(train, True, ds.image_size),
        batch_size=params.train_batch_size,
        sampler=sampler,
        drop_last=True,
        **loader_args,
    )
    # Its own generator, so creating loader iterators never draws from the global RNG that dropout uses.
    train_loader.generator = torch.Generator().manual_seed(config.random_state)

    trace = os.environ.get("HANDGESTURE_SAMPLE_TRACE")

    def train_batches(epoch: int, position: int) -> Iterable[dict]:
        sampler.set_epoch(epoch, start=position)
        return (
            _traced(train_loader, Path(trace) / f"rank-{cluster.rank}.txt", epoch) if trace else train_loader
        )

    return DataBundle(
        train_batches=train_batches,
        val_batches=_eval_batches(
            split.dataset(val, False, ds.image_size), params.test_batch_size, loader_args, cluster
        ),
        test_batches=build_test_batches(config, device, prepared, cluster),
        train_size=len(train),
        val_size=len(val),
        missing_images=split.missing_images,
        notes=split.notes,
    )


def build_val_batches(config: Config, device: torch.device, prepared: PreparedData) -> Batches:
    """The validation split alone (what an evaluation of a finished model reads)."""
    split = open_split(config, prepared.splits["train"])
    _, val = split_by_user(split.samples, config.random_state, config.dataset.val_fraction)
    dataset = split.dataset(val, False, config.dataset.image_size)
    return _eval_batches(dataset, config.train_params.test_batch_size, _loader_args(config, device))


def build_test_batches(
    config: Config, device: torch.device, prepared: PreparedData, cluster: Cluster = SINGLE
) -> Batches | None:
    if "test" not in prepared.splits:
        return None
    split = open_split(config, prepared.splits["test"])
    dataset = split.dataset(split.samples, False, config.dataset.image_size)
    return _eval_batches(dataset, config.train_params.test_batch_size, _loader_args(config, device), cluster)


def _loader_args(config: Config, device: torch.device) -> dict:
    params = config.train_params
    return {
        "num_workers": params.num_workers,
        "prefetch_factor": params.prefetch_factor,
        "pin_memory": device.type == "cuda",
        "persistent_workers": params.num_workers > 0,
    }


def _eval_batches(dataset, batch_size: int, loader_args: dict, cluster: Cluster = SINGLE) -> Batches:
    sampler = EpochSampler(len(dataset), seed=0, shuffle=False, rank=cluster.rank, world=cluster.world_size)
    loader = make_loader(dataset, batch_size=batch_size, sampler=sampler, **loader_args)
    loader.generator = torch.Generator().manual_seed(0)
    return lambda: loader


def _traced(batches: Iterable[dict], path: Path, epoch: int) -> Iterator[dict]:
    path.with_suffix(".pid").write_text(str(os.getpid()))
    for batch in batches:
        with open(path, "a") as trace:
            trace.write(" ".join(map(str, [epoch, *batch["index"].tolist()])) + "\n")
        yield batch
