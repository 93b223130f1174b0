"""The prepare step in shards (`prepare.dask`): plan in the flow's process, build parts anywhere, assemble.

`plan_prepare` reads each split's annotations and keys its cache, as `prepare.prepare_data` does; a cache
that is there (or in the share) is taken as it is, the others become `Shard`s, which the flow maps over its
task runner (a Dask cluster's workers) with `prepare_shard`. `finish_prepare` then assembles each cache from
its parts. Without `prepare.dask` none of this runs: `prepare_data` cuts each cache in one process.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from handgesture.config import Config
from handgesture.data import sources
from handgesture.data.annotations import Sample, read_annotations
from handgesture.data.cache import (
    cache_key,
    cache_settings,
    check_space,
    estimated_size,
    finished_cache,
    verify_folder,
)
from handgesture.data.cache_share import CacheShare
from handgesture.data.prepare import (
    PreparedData,
    PreparedSplit,
    _annotation_files,
    annotation_folders,
    check_data_keys,
    ensure_dataset,
)
from handgesture.data.shards import Shard, assemble_parts, build_part, shard_ranges
from handgesture.data.worker_heap import frame_sized_heap
from handgesture.storage import open_store, s3_settings

log = logging.getLogger(__name__)


@dataclass
class SplitPlan:
    """One split's cache: already prepared (`done`), or to be built from `ranges` of its samples."""

    annotations: str
    folder: str = ""
    key: str = ""
    samples: list[Sample] = field(default_factory=list)
    missing_images: int = 0
    notes: list[str] = field(default_factory=list)
    ranges: list[tuple[int, int]] = field(default_factory=list)
    started: float = 0.0
    done: PreparedSplit | None = None


@dataclass
class PreparePlan:
    splits: dict[str, SplitPlan] = field(default_factory=dict)

    def shards(self, config: Config) -> list[Shard]:
        """Every part still to build, over all splits, in a fixed order."""
        settings = _settings(config)
        return [
            Shard(plan.folder, plan.key, settings, start, stop, tuple(plan.samples[start:stop]))
            for plan in self.splits.values()
            if plan.done is None
            for start, stop in plan.ranges
        ]


def plan_prepare(config: Config, workers: int = 1) -> PreparePlan:
    """Each split's cache found (reused, downloaded) or planned in shards of `prepare.shard_size`."""
    check_data_keys(config)
    sources.activate(config)
    ensure_dataset(config)
    plan = PreparePlan()
    for name, folder in annotation_folders(config).items():
        if not config.dataset.cache_dir:
            plan.splits[name] = SplitPlan(folder, done=PreparedSplit(annotations=folder))
            continue
        plan.splits[name] = _plan_split(config, folder, workers)
        log.info("%s split: %d shards to prepare", name, len(plan.splits[name].ranges))
    return plan


def _plan_split(config: Config, folder: str, workers: int) -> SplitPlan:
    ds, started = config.dataset, time.perf_counter()
    found = read_annotations(folder, ds.dataset, ds.targets, ds.subset, config.model.full_frame)
    settings = _settings(config)
    key = cache_key(found.samples, settings, _annotation_files(folder, ds.targets), ds.targets)
    cache = Path(ds.cache_dir) / f"{settings.kind}-{key[:24]}"
    plan = SplitPlan(folder, str(cache), key, found.samples, found.missing_images, found.notes, [], started)
    # A folder without its index holds parts of an unfinished prepare: kept, not a cache to warn about.
    found_index = (cache / "index.json").exists()
    index = verify_folder(cache, key, settings, found.samples) if found_index else None
    origin = "reused"
    share = _share(config)
    if index is None and share is not None:
        index, origin = share.fetch(cache, key, settings, found.samples), "downloaded"
    if index is not None:
        shared = share if origin == "reused" else None  # a cache found here is shared, as prepare_cache does
        cached = finished_cache(cache, key, settings, found.samples, ds.image_size, shared)
        cached.origin = origin
        plan.done = _prepared(folder, cached, started)
        return plan
    cache.mkdir(parents=True, exist_ok=True)
    check_space(cache, estimated_size(len(found.samples), settings), settings)
    plan.ranges = shard_ranges(len(found.samples), config.prepare.shard_size, workers)
    return plan


def prepare_shard(config: Config, shard: Shard) -> dict:
    """One part, on whichever process runs it (a Dask worker): its part.json."""
    sources.activate(config)  # this process reads S3 and archives with the config's storage settings
    with frame_sized_heap():
        return build_part(shard)


def finish_prepare(config: Config, plan: PreparePlan) -> PreparedData:
    """Every planned cache assembled from its parts (all must be there), checked and shared."""
    prepared = PreparedData()
    for name, split in plan.splits.items():
        if split.done is None:
            cache = Path(split.folder)
            settings = _settings(config)
            assemble_parts(
                cache, split.key, settings, split.samples, split.ranges, split.missing_images, split.notes
            )
            cached = finished_cache(
                cache, split.key, settings, split.samples, config.dataset.image_size, _share(config)
            )
            split.done = _prepared(split.annotations, cached, split.started)
        prepared.splits[name] = split.done
        log.info("%s split: %s", name, asdict(split.done))
    return prepared


def _prepared(annotations: str, cached, started: float) -> PreparedSplit:
    summary = cached.summary()
    summary["cache"] = summary.pop("folder")
    return PreparedSplit(annotations=annotations, seconds=round(time.perf_counter() - started, 2), **summary)


def _settings(config: Config):
    ds = config.dataset
    return cache_settings(
        ds.image_size,
        fmt=ds.cache_format,
        quality=ds.cache_quality,
        levels=ds.cache_levels,
        full_frame=config.model.full_frame,
    )


def _share(config: Config) -> CacheShare | None:
    ds = config.dataset
    return CacheShare(open_store(ds.cache_uri, s3_settings(config.storage))) if ds.cache_uri else None
