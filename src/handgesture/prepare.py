"""Data preparation, once per dataset and settings: the synthetic demo data when asked for, then the crop
caches of the training and test splits, so epochs read small crops instead of decoding full frames.

``prepare_data`` is the flow's prepare task and ``handgesture prepare``; the train task calls ``crop_cache``
again and finds the cache ready (verified, not rebuilt).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

from handgesture.config import Config
from handgesture.data.annotations import DataError, read_annotations
from handgesture.data.cache import CropCache, prepare_cache
from handgesture.data.cache_share import CacheShare
from handgesture.data.synthetic import generate_synthetic
from handgesture.restore import s3_settings
from handgesture.storage import open_store

log = logging.getLogger(__name__)


def ensure_dataset(config: Config) -> None:
    """The demo's data: generate a HaGRID-format synthetic dataset once, when asked to and absent."""
    annotations = Path(config.dataset.annotations)
    if not config.synthetic.generate_if_missing or annotations.is_dir():
        return
    if annotations.parent != Path(config.dataset.dataset).parent:
        raise DataError(
            "synthetic.generate_if_missing needs dataset.annotations and dataset.dataset in one folder "
            f"(got {annotations} and {config.dataset.dataset})"
        )
    log.info("generating a synthetic HaGRID-format dataset in %s (first use)", annotations.parent)
    generate_synthetic(
        annotations.parent,
        per_class=config.synthetic.per_class,
        targets=config.dataset.targets,
        users=config.synthetic.users,
        frame_size=tuple(config.synthetic.frame_size),
        seed=config.random_state,
    )


def crop_cache(config: Config, samples, annotations: str) -> CropCache | None:
    """The crop cache of ``samples`` (read from the ``annotations`` folder); None when caching is off."""
    ds = config.dataset
    if not ds.cache_dir:
        return None
    share = CacheShare(open_store(ds.cache_uri, s3_settings(config))) if ds.cache_uri else None
    return prepare_cache(
        samples,
        ds.image_size,
        ds.cache_dir,
        fmt=ds.cache_format,
        workers=config.train_params.num_workers,
        annotation_files=sorted(Path(annotations).glob("*.json")),
        share=share,
    )


def prepare_data(config: Config) -> dict:
    """Make sure the data and its crop caches exist; a small summary of what was found or built."""
    ensure_dataset(config)
    ds = config.dataset
    splits = {"train": ds.annotations}
    if ds.test_annotations:
        splits["test"] = ds.test_annotations
    summary: dict = {"cache_dir": ds.cache_dir, "cache_uri": ds.cache_uri, "splits": {}}
    for split, folder in splits.items():
        start = time.perf_counter()
        found = read_annotations(folder, ds.dataset, ds.targets, ds.subset)
        cache = crop_cache(config, found.samples, folder)
        info = cache.summary() if cache else {"samples": len(found.samples), "origin": "off"}
        summary["splits"][split] = {**info, "seconds": round(time.perf_counter() - start, 2)}
        log.info("%s split: %s", split, summary["splits"][split])
    return summary
