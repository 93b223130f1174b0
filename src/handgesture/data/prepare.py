"""The prepare-data step, once per dataset and settings: the synthetic demo data when asked for, then the
crop caches (with `model.full_frame`: frame caches) of the training, validation (when given) and test
annotations, so epochs read small crops or letterboxed frames instead of decoding full-HD frames.

`prepare_data` is the flow's prepare-data task and `handgesture prepare`. It returns what it prepared
(`PreparedData`: each split's cache folder and key), and training, evaluation and promotion open exactly
that with `open_split`: the annotations are read and the caches keyed once per run.
"""

from __future__ import annotations

import logging
import re
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from handgesture.config import Config
from handgesture.data import sources
from handgesture.data.annotations import Sample, read_annotations
from handgesture.data.cache import CropCache, open_cache, prepare_cache
from handgesture.data.cache_share import CacheShare
from handgesture.data.dataset import HandCropDataset
from handgesture.data.full_frames import FullFrameDataset
from handgesture.data.synthetic import generate_synthetic
from handgesture.errors import DataError
from handgesture.storage import open_store, s3_settings

log = logging.getLogger(__name__)


@dataclass
class PreparedSplit:
    """One annotations folder as prepared: its crop cache (None when caching is off) and what it holds."""

    annotations: str
    cache: str | None = None
    key: str | None = None
    samples: int | None = None
    missing_images: int = 0
    unreadable: int = 0
    origin: str = "off"  # reused, downloaded, prepared; off: frames are decoded each epoch
    bytes: int = 0
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)  # what reading the annotations skipped, and why


@dataclass
class PreparedData:
    """What the prepare-data step made: "train", "val" when `dataset.val_annotations` gives it (else the
    loaders split "train" by person into train and validation) and "test"."""

    splits: dict[str, PreparedSplit] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"splits": {name: asdict(split) for name, split in self.splits.items()}}


@dataclass
class SplitData:
    """A split's samples and how to make a dataset of some of them: hand crops, or (`full_frame`) whole
    frames."""

    samples: list[Sample]
    missing_images: int
    cache: CropCache | None
    notes: list[str]
    full_frame: bool = False

    def dataset(self, samples: list[Sample], train: bool, image_size):
        size = (image_size[0], image_size[1])
        if self.cache is not None:
            return self.cache.dataset(samples, train=train)
        if self.full_frame:
            return FullFrameDataset(samples, size)
        return HandCropDataset(samples, size, train=train)


# The data keys are read where the data lives (`data.sources`); the cache is written, so it is a local folder:
# a URI read as one would become a folder named "s3:" (say) in the cwd.
SOURCE_KEYS = ("annotations", "dataset", "val_annotations", "test_annotations")
LOCAL_FOLDER_KEYS = ("cache_dir",)
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")


def check_data_keys(config: Config) -> None:
    """One InputError for a data key no source reads (``gs://``, ``http://``, ...) or a cache_dir URI."""
    for key in SOURCE_KEYS:
        value = getattr(config.dataset, key)
        if isinstance(value, str):
            sources.check_spec(f"dataset.{key}", value)
    for key in LOCAL_FOLDER_KEYS:
        value = getattr(config.dataset, key)
        found = _SCHEME.match(value) if isinstance(value, str) else None
        if found:
            raise DataError(
                f"dataset.{key}={_without_credentials(value)}: a {found.group(1)}:// URI, but the cache is "
                "written to a local folder (dataset.cache_uri shares it through a store)"
            )


def _without_credentials(uri: str) -> str:
    """The URI with any user:password@ part masked: errors name the input, never a secret."""
    parts = urlsplit(uri)
    if "@" not in parts.netloc:
        return uri
    return urlunsplit(parts._replace(netloc="***@" + parts.netloc.rsplit("@", 1)[1]))


def ensure_dataset(config: Config) -> None:
    """The demo's data: generate a HaGRID-format synthetic dataset once, when asked to and absent.

    Only into the two folders it fills (v1: annotations/ and images/; v2: hagrid_annotations/ and
    hagrid_dataset/), and only when both are missing or empty: a mistyped path next to a user's real dataset
    must be an error naming it, never a reason to write synthetic frames among theirs.
    """
    given = (config.dataset.annotations, config.dataset.dataset)
    if not config.synthetic.generate_if_missing or not all(sources.is_plain_folder(p) for p in given):
        return  # archives and S3 are read, never written
    annotations, images = Path(given[0]), Path(given[1])
    if annotations.is_dir():
        return
    out, expected, filled = _synthetic_layout(annotations, config.synthetic.hagrid_version)
    if (annotations, images) != expected:
        raise DataError(
            f"dataset.annotations {annotations} does not exist; synthetic.generate_if_missing would write "
            f"{expected[0]} and {expected[1]} instead (got dataset.dataset {images})"
        )
    for folder in filled:
        if _has_content(folder):
            raise DataError(
                f"dataset.annotations {annotations} does not exist, but {folder} has content: fix "
                "dataset.annotations (no synthetic data is written into an existing dataset)"
            )
    log.info("generating a synthetic HaGRID-format dataset in %s (first use)", out)
    generate_synthetic(
        out,
        per_class=config.synthetic.per_class,
        targets=config.dataset.targets,
        users=config.synthetic.users,
        frame_size=tuple(config.synthetic.frame_size),
        seed=config.random_state,
        version=config.synthetic.hagrid_version,
    )


def _synthetic_layout(annotations: Path, version: int) -> tuple[Path, tuple[Path, Path], list[Path]]:
    """Where generation writes, (dataset.annotations, dataset.dataset) there, and the folders it fills."""
    if version == 2:  # as v2 ships: <out>/hagrid_annotations/{train,val,test}, <out>/hagrid_dataset
        out = annotations.parent.parent
        filled = [out / "hagrid_annotations", out / "hagrid_dataset"]
        return out, (filled[0] / "train", filled[1]), filled
    out = annotations.parent
    return out, (out / "annotations", out / "images"), [out / "images"]


def _has_content(folder: Path) -> bool:
    return folder.is_dir() and any(folder.iterdir()) or (folder.exists() and not folder.is_dir())


def annotation_folders(config: Config) -> dict[str, str]:
    """The annotations folder of each split: "train", and "val" and "test" when they are given."""
    ds = config.dataset
    given = {"train": ds.annotations, "val": ds.val_annotations, "test": ds.test_annotations}
    return {name: folder for name, folder in given.items() if folder}


def prepare_data(config: Config) -> PreparedData:
    """Make sure the data and its crop caches exist; with caching off there is nothing to prepare."""
    check_data_keys(config)
    sources.activate(config)  # this process reads S3 with the config's storage settings
    ensure_dataset(config)
    prepared = PreparedData()
    for name, folder in annotation_folders(config).items():
        if not config.dataset.cache_dir:
            prepared.splits[name] = PreparedSplit(annotations=folder)
            log.info("%s split: caching is off (dataset.cache_dir=null), frames are decoded each epoch", name)
            continue
        start = time.perf_counter()
        summary = _prepare_cache(config, folder).summary()
        summary["cache"] = summary.pop("folder")
        prepared.splits[name] = PreparedSplit(
            annotations=folder, seconds=round(time.perf_counter() - start, 2), **summary
        )
        log.info("%s split: %s", name, asdict(prepared.splits[name]))
    return prepared


def _prepare_cache(config: Config, folder: str) -> CropCache:
    ds = config.dataset
    found = read_annotations(folder, ds.dataset, ds.targets, ds.subset, config.model.full_frame)
    share = CacheShare(open_store(ds.cache_uri, s3_settings(config.storage))) if ds.cache_uri else None
    return prepare_cache(
        found.samples,
        ds.image_size,
        ds.cache_dir,
        fmt=ds.cache_format,
        quality=ds.cache_quality,
        levels=ds.cache_levels,
        workers=config.train_params.num_workers,
        annotation_files=_annotation_files(folder, ds.targets),
        missing_images=found.missing_images,
        notes=found.notes,
        targets=ds.targets,
        share=share,
        full_frame=config.model.full_frame,
        sizes=found.sizes,
    )


def _annotation_files(folder: str, targets) -> list:
    """What the cache key digests of the annotations: a plain folder's every ``*.json`` (as always), else the
    target files' locators (keyed by identity, not downloaded again)."""
    if sources.is_plain_folder(folder):
        return sorted(Path(folder).glob("*.json"))
    return [ref.locator for ref in sources.annotation_files(folder, targets).values()]


def open_split(config: Config, split: PreparedSplit) -> SplitData:
    """The samples of a prepared split: from its cache, or from the annotations when caching is off."""
    ds, full_frame = config.dataset, config.model.full_frame
    sources.activate(config, fresh=False)
    if split.cache is None:
        found = read_annotations(split.annotations, ds.dataset, ds.targets, ds.subset, full_frame)
        return SplitData(found.samples, found.missing_images, None, found.notes, full_frame)
    cache = open_cache(split.cache, split.key, ds.image_size, ds.dataset)
    if cache.settings.full_frame != full_frame:
        kinds = {True: "a frame cache", False: "a crop cache"}
        raise DataError(
            f"prepared cache {split.cache} is {kinds[cache.settings.full_frame]}, but model.full_frame="
            f"{str(full_frame).lower()} reads {kinds[full_frame]}: prepare the data with this config again"
        )
    return SplitData(cache.samples, cache.missing_images, cache, cache.notes, full_frame)
