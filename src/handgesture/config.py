"""The one typed training config: HaGRID classifier key names plus checkpointing, storage and tracking.

`load_config` merges the schema, a YAML file and a dotlist once, at the edge; everything downstream gets a
validated `Config` (or a plain dict of it when crossing a Prefect task boundary).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from handgesture.config_checks import refuse_interpolations, validate
from handgesture.errors import ConfigError
from handgesture.foreign_config import FOREIGN_KEYS, translate, unknown_keys
from handgesture.labels import HAGRID_TARGETS

DEFAULT_CONFIG = Path(__file__).resolve().parents[2] / "configs" / "default.yaml"


@dataclass
class DatasetConfig:
    annotations: str = "data/synthetic/annotations"
    dataset: str = "data/synthetic/images"
    test_annotations: str | None = None
    targets: list[str] = field(default_factory=lambda: list(HAGRID_TARGETS))
    image_size: list[int] = field(default_factory=lambda: [224, 224])
    subset: int = -1
    val_fraction: float = 0.2
    cache_dir: str | None = "data/cache"  # crop caches (prepared once, keyed by content); None: decode frames
    cache_format: str = "jpeg"  # jpeg: about 46 KiB per hand at 224 px; raw: 12x larger, a little faster
    cache_quality: int = 95  # JPEG quality of the rows
    cache_levels: int = 2  # concentric rows per hand; 2 costs the bytes of 1 and halves a crop's decoding
    cache_uri: str | None = None  # share prepared caches here (folder or s3://): fetched, else published


@dataclass
class SyntheticConfig:
    """Generate a HaGRID-format dataset at `dataset.*` on first use (the demo's data)."""

    generate_if_missing: bool = False
    hagrid_version: int = 1  # annotation format: 1 (leading hands) or 2 (united boxes, own no_gesture)
    per_class: int = 40
    users: int = 10
    frame_size: list[int] = field(default_factory=lambda: [320, 240])


@dataclass
class ModelConfig:
    name: str = "ResNet18"
    pretrained: bool = False
    freezed: bool = False


@dataclass
class OptimizerConfig:
    optimizer: str = "SGD"
    lr: float = 0.005
    momentum: float = 0.9
    weight_decay: float = 0.0005


@dataclass
class SchedulerConfig:
    start_factor: float = 0.001
    warmup_steps: int = 100
    cosine: bool = False


@dataclass
class TrainParams:
    epochs: int = 10
    num_workers: int = 2
    train_batch_size: int = 64
    test_batch_size: int = 64
    prefetch_factor: int = 2
    amp: bool = True
    log_every_n_steps: int = 10
    # Data-parallel training (DDP, launched with torchrun's elastic launcher): ranks per node, "auto" for
    # every visible GPU; nodes, and where they meet (host:port of node 0's rendezvous); SyncBatchNorm.
    devices: str = "1"
    nnodes: int = 1
    rdzv_endpoint: str | None = None
    sync_bn: bool = False


@dataclass
class MetricParams:
    metrics: list[str] = field(default_factory=lambda: ["accuracy", "f1_score", "precision", "recall"])
    average: str = "weighted"


@dataclass
class CheckpointConfig:
    every_n_steps: int = 0  # 0: only at epoch ends
    every_seconds: float = 300.0  # 0: no time-based checkpoints; at most 5 minutes of work lost by default
    keep_last: int = 2
    keep_best: int = 1
    resume: str | None = None  # where a run starts when no resume URI is given (HaGRID's model.checkpoint)
    # continue: `resume` restores the full training state (shapes must match);
    # finetune: only the weights that fit, with a fresh optimizer, schedule and counters.
    resume_mode: str = "continue"
    # A fine-tune re-initialises the heads that do not fit (other classes); anything more is an error unless
    # this is true (say, a checkpoint of another architecture whose backbone is only partly reusable).
    allow_backbone_reinit: bool = False


@dataclass
class StorageConfig:
    uri: str = "runs"
    experiment: str = "handgesture"
    run_name: str | None = None
    block: str | None = None
    endpoint_url: str | None = None
    max_retries: int = 4
    upload_timeout: float = 600.0  # at the end of a run, how long to wait for background uploads


@dataclass
class TrackingConfig:
    tensorboard: bool = True
    hparams: list[str] = field(default_factory=list)  # more config keys for TensorBoard's HParams (a sweep's)


@dataclass
class Config:
    dataset: DatasetConfig = field(default_factory=DatasetConfig)
    synthetic: SyntheticConfig = field(default_factory=SyntheticConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)
    scheduler: SchedulerConfig = field(default_factory=SchedulerConfig)
    train_params: TrainParams = field(default_factory=TrainParams)
    metric_params: MetricParams = field(default_factory=MetricParams)
    checkpoint: CheckpointConfig = field(default_factory=CheckpointConfig)
    storage: StorageConfig = field(default_factory=StorageConfig)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)
    random_state: int = 42
    device: str = "auto"
    deterministic: bool = True


def load_config(
    path: str | Path | None = None,
    overrides: list[str] | None = None,
    base: tuple[str, dict[str, Any]] | None = None,
) -> Config:
    """Schema <- configs/default.yaml <- YAML file <- dotlist overrides, validated.

    `base` (a source name and a config dict, say a checkpoint's) takes configs/default.yaml's place.
    Errors name the key and the file (or the overrides) it came from. Interpolations (`${...}`) are refused
    in every layer (`config_checks.INTERPOLATION_ALLOWED`), so nothing is resolved from the environment.
    """
    merged = OmegaConf.structured(Config)
    files = [DEFAULT_CONFIG] if DEFAULT_CONFIG.is_file() and base is None else []
    if path is not None and Path(path).resolve() != DEFAULT_CONFIG:
        files.append(Path(path))
    layers = [(base[0], OmegaConf.create(base[1]))] if base else []
    layers += [(f"config file {file}", _read_yaml(file)) for file in files]
    if overrides:
        # The overrides are not listed in messages: a value typed there is the user's to keep out of logs.
        layers.append(("overrides", _from_dotlist(list(overrides))))
    for source, layer in layers:
        try:
            merged = OmegaConf.merge(merged, _checked(layer, source))
        except OmegaConfBaseException as exc:
            raise ConfigError(f"invalid config from {source}: {_describe(exc)}") from None
    config: Config = OmegaConf.to_object(merged)  # type: ignore[assignment]
    validate(config)
    return config


def flow_overrides(overrides: list[str] | None, storage: str | None) -> list[str]:
    """The flow's `overrides` plus its `storage` parameter, which sets `storage.uri`."""
    return list(overrides or []) + ([f"storage.uri={storage}"] if storage else [])


def _read_yaml(path: Path) -> DictConfig:
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist (expected a YAML file)")
    try:
        loaded = OmegaConf.load(path)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ConfigError(f"config file {path} is not valid YAML{where}: {_yaml_problem(exc)}") from None
    if not isinstance(loaded, DictConfig):
        raise ConfigError(f"config file {path} must hold a mapping, not a {type(loaded).__name__}")
    return loaded


def _from_dotlist(overrides: list[str]) -> DictConfig:
    """One at a time, so a value that is not YAML (`optimizer.lr=[1,`) is one line naming its key."""
    layer = OmegaConf.create()
    for override in overrides:
        key = str(override).split("=", 1)[0]
        try:
            layer.merge_with_dotlist([override])
        except yaml.YAMLError as exc:
            raise ConfigError(f"override of {key} is not valid YAML: {_yaml_problem(exc)}") from None
        except OmegaConfBaseException as exc:
            raise ConfigError(f"invalid config from overrides: {_describe(exc)}") from None
    return layer


def _yaml_problem(exc: yaml.YAMLError) -> str:
    return getattr(exc, "problem", None) or str(exc).splitlines()[0]


def _checked(layer: DictConfig, source: str) -> DictConfig:
    """`layer` with HaGRID's own keys mapped to ours; every key the schema lacks named in one error; no
    interpolation (checked before anything reads a value)."""
    raw = OmegaConf.to_container(layer, resolve=False)
    refuse_interpolations(raw, source)
    data = translate(raw, source)
    schema = OmegaConf.to_container(OmegaConf.structured(Config), resolve=False)
    unknown = unknown_keys(data, schema)
    if unknown:
        raise ConfigError(
            f"invalid config from {source}: unknown keys {', '.join(unknown)} (not in the schema; HaGRID's "
            f"own keys {', '.join(FOREIGN_KEYS)} are mapped)"
        )
    return OmegaConf.create(data)


def _describe(exc: OmegaConfBaseException) -> str:
    key = getattr(exc, "full_key", None)
    first_line = str(exc).splitlines()[0]
    return f"key '{key}': {first_line}" if key else first_line


def to_dict(config: Config) -> dict[str, Any]:
    """Plain containers: what crosses task boundaries and goes into checkpoints. Copied field by field, not
    through OmegaConf, so a string that looks like `${...}` stays text and is never resolved."""
    return dataclasses.asdict(config)


def from_dict(data: dict[str, Any]) -> Config:
    """The config a task received; interpolations are refused here too (task parameters come from outside)."""
    refuse_interpolations(data, "the config dict")
    try:
        merged = OmegaConf.merge(OmegaConf.structured(Config), data)
    except OmegaConfBaseException as exc:
        raise ConfigError(f"invalid config dict: {_describe(exc)}") from None
    config: Config = OmegaConf.to_object(merged)  # type: ignore[assignment]
    validate(config)
    return config


def to_yaml(config: Config) -> str:
    return OmegaConf.to_yaml(OmegaConf.structured(config))


def config_hash(config: Config) -> str:
    """Short, stable digest of the resolved config, for lineage."""
    canonical = json.dumps(to_dict(config), sort_keys=True)
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]
