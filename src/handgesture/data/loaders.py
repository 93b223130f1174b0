"""The loaders a run reads: training (resumable, seeded), validation (`dataset.val_annotations` as given,
else the person split) and test.

Built from what the prepare-data step prepared (`PreparedData`), so a run opens the prepared caches instead of
reading the annotations and keying the caches again. In a data-parallel run each rank's loaders read its
shard (`Cluster`).

`HANDGESTURE_SAMPLE_TRACE=<folder>` makes each rank append, per training batch, a line
``<epoch> <dataset index> ...`` to ``<folder>/rank-<r>.txt`` (and write its pid to ``rank-<r>.pid``): what
every rank trained on, for checking that a resume neither replays nor skips a sample.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import torch

from handgesture.cluster import SINGLE, Cluster
from handgesture.config import Config
from handgesture.data.annotations import Sample, split_by_user
from handgesture.data.dataset import EpochSampler, make_loader
from handgesture.data.prepare import PreparedData, SplitData, open_split

log = logging.getLogger(__name__)
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


@dataclass
class Part:
    """Some samples of a prepared split, and the split that crops them."""

    split: SplitData
    samples: list[Sample]

    def dataset(self, train: bool, image_size):
        return self.split.dataset(self.samples, train, image_size)


def train_and_val(config: Config, prepared: PreparedData) -> tuple[Part, Part]:
    """The training and validation samples: the validation split as given (`dataset.val_annotations`,
    prepared as "val") beside all of "train", else "train" split by person."""
    train = open_split(config, prepared.splits["train"])
    if "val" not in prepared.splits:
        fit, val = split_by_user(train.samples, config.random_state, config.dataset.val_fraction)
        return Part(train, fit), Part(train, val)
    given = open_split(config, prepared.splits["val"])
    shared = {s.user_id for s in train.samples} & {s.user_id for s in given.samples}
    if shared:  # HaGRID v2 splits by person upstream: a shared person flatters validation, but is their data
        log.warning(
            "%d people (user_id) are in both the training and the validation annotations (%s, %s)",
            len(shared),
            prepared.splits["train"].annotations,
            prepared.splits["val"].annotations,
        )
    return Part(train, train.samples), Part(given, given.samples)


def build_data(
    config: Config, device: torch.device, prepared: PreparedData, cluster: Cluster = SINGLE
) -> DataBundle:
    ds, params = config.dataset, config.train_params
    train, val = train_and_val(config, prepared)
    loader_args = _loader_args(config, device)
    sampler = EpochSampler(
        len(train.samples),
        config.random_state,
        shuffle=True,
        rank=cluster.rank,
        world=cluster.world_size,
        batch_size=params.train_batch_size,
    )
    # BatchNorm fails on a training batch of 1, hence drop_last.
    train_loader = make_loader(
        train.dataset(True, ds.image_size),
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
            val.dataset(False, ds.image_size), params.test_batch_size, loader_args, cluster
        ),
        test_batches=build_test_batches(config, device, prepared, cluster),
        train_size=len(train.samples),
        val_size=len(val.samples),
        **_skipped(train.split, val.split),
    )


def _skipped(train: SplitData, val: SplitData) -> dict:
    """What reading the training data skipped: the validation split's too when it is a split of its own."""
    splits = [train] if val is train else [train, val]
    return {
        "missing_images": sum(s.missing_images for s in splits),
        "notes": [note for s in splits for note in s.notes],
    }


def build_val_batches(config: Config, device: torch.device, prepared: PreparedData) -> Batches:
    """The validation split alone (what an evaluation of a finished model reads)."""
    _, val = train_and_val(config, prepared)
    dataset = val.dataset(False, config.dataset.image_size)
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
