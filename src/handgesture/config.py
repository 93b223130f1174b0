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
from handgesture.foreign_config import mapped, unknown_keys
from handgesture.labels import HAGRID_TARGETS

DEFAULT_CONFIG = Path(__file__).resolve().parents[2] / "configs" / "default.yaml"


# configs/default.yaml's opening comment; the comment beside each value is its field's (`doc`).
HEADER = """\
Training config. Key names follow HaGRID's classifier (dataset.*, model.*, optimizer.*, scheduler.*,
train_params.*, metric_params, random_state, device); checkpoint, storage, synthetic and tracking are ours.
Every other file in configs/ and every `key=value` override is merged over this one."""
COMMENT = "comment"  # the key of a field's metadata that holds its comment


def doc(default: Any, comment: str) -> Any:
    """A field with its default and the comment a user reads beside it in configs/default.yaml.

    The schema holds both, so they cannot drift apart; scripts/write_default_config.py writes the file from
    them. `comment` is written as printed: a newline starts the comment's next line.
    """
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), metadata={COMMENT: comment})
    return field(default=default, metadata={COMMENT: comment})


@dataclass
class DatasetConfig:
    annotations: str = doc("data/synthetic/annotations", "folder of <gesture>.json files (HaGRID format)")
    dataset: str = doc("data/synthetic/images", "images at <dataset>/<gesture>/<image_id>.jpg")
    val_annotations: str | None = doc(
        None, "the validation split as given (v2's hagrid_annotations/val);\nnull: split by person"
    )
    test_annotations: str | None = doc(None, "optional separate test split (same format)")
    targets: list[str] = doc(HAGRID_TARGETS, "the classes, in the order of the gesture head's outputs")
    image_size: list[int] = doc([224, 224], "[height, width] of the crops the model sees")
    subset: int = doc(-1, "> 0: at most this many images per gesture")
    val_fraction: float = doc(
        0.2, "share of *people* (user_id) held out for validation\n(without dataset.val_annotations)"
    )
    cache_dir: str | None = doc(
        "data/cache",
        "crop caches, cut once from the full frames (prepare task), so\n"
        "epochs never decode frames again; null: decode every epoch",
    )
    cache_format: str = doc(
        "jpeg",
        "jpeg: about 46 KiB per hand at 224 px, 10x+ HaGRID's read\n"
        "speed; raw: 12x larger on disk, a little faster",
    )
    cache_quality: int = doc(90, "JPEG quality of the cached rows")
    cache_levels: int = doc(
        2, "concentric rows per hand: 2 holds the bytes of 1 and halves\nwhat each crop decodes"
    )
    cache_uri: str | None = doc(
        None,
        "share prepared caches (folder or s3://bucket/prefix): a fresh\n"
        "worker downloads one instead of preparing it again",
    )


@dataclass
class SyntheticConfig:
    """Generate a HaGRID-format dataset at `dataset.*` on first use (the demo's data)."""

    generate_if_missing: bool = doc(
        False,
        "true (configs/demo.yaml): write a synthetic dataset at\n"
        "dataset.* when both folders are missing or empty",
    )
    hagrid_version: int = doc(1, "annotation format: 1 (leading hands) or 2 (united boxes)")
    per_class: int = doc(40, "images per gesture (v2: in train; val and test get a quarter)")
    users: int = doc(10, "people (user_id) the images are spread over (v2: per split)")
    frame_size: list[int] = doc([320, 240], "[width, height] of each frame")


@dataclass
class ModelConfig:
    name: str = doc(
        "ResNet18", "ResNet18 ResNext50 ResNext101 ResNet152 MobileNetV3_small\nMobileNetV3_large Vitb32"
    )
    pretrained: bool = doc(False, "torchvision ImageNet weights (downloads once)")
    freezed: bool = doc(False, "train the heads only")
    full_frame: bool = doc(
        False,
        "true: HaGRID v2's full-frame classifier (the whole frame in,\n"
        "one gesture out): ResNet18 ResNet152 MobileNetV3_small\n"
        "MobileNetV3_large ConvNeXt_base VitB16; false: hand crops",
    )


@dataclass
class OptimizerConfig:
    optimizer: str = doc("SGD", "SGD (HaGRID's), Adam or AdamW")
    lr: float = doc(0.005, "learning rate, reached at the end of the warm-up")
    momentum: float = doc(0.9, "SGD's momentum; Adam's and AdamW's first beta")
    weight_decay: float = doc(0.0005, "L2 penalty (AdamW: decoupled weight decay)")


@dataclass
class SchedulerConfig:
    start_factor: float = doc(0.001, "linear warm-up from lr * start_factor ...")
    warmup_steps: int = doc(100, "... over this many steps")
    name: str = doc(
        "none",
        "then: none (the rate stays), CosineAnnealingLR (to the last\nepoch), StepLR or ReduceLROnPlateau",
    )
    cosine: bool = doc(False, "older spelling of name=CosineAnnealingLR")
    step_size: int = doc(1, "StepLR: epochs between decays ...")
    gamma: float = doc(0.1, "... each multiplying the rate by gamma")
    mode: str = doc(
        "min",
        "ReduceLROnPlateau, stepped once per epoch on the epoch's mean\n"
        "training loss (HaGRID v2's): min or max ...",
    )
    factor: float = doc(0.1, "... the rate times factor ...")
    patience: int = doc(10, "... after this many epochs without improvement ...")
    threshold: float = doc(0.0001, "... by more than threshold ...")
    threshold_mode: str = doc("rel", "... relative (rel) or absolute (abs) ...")
    cooldown: int = doc(0, "... then this many epochs without a reduction ...")
    min_lr: float = doc(0.0, "... and never below min_lr")

    @property
    def schedule(self) -> str:
        """The schedule after the warm-up, `cosine=true` (the older spelling) included."""
        return "CosineAnnealingLR" if self.cosine and self.name == "none" else self.name


@dataclass
class EarlyStoppingConfig:
    """HaGRID v2's rule: stop when `epochs` epochs have passed since the best validation gesture F1, an
    epoch counting as the best only when it beats the best before it by more than `metric`."""

    epochs: int = doc(0, "stop after this many epochs without improvement (0: never) ...")
    metric: float = doc(0.0, "... by more than this much validation gesture F1")


@dataclass
class TrainParams:
    epochs: int = doc(10, "total epochs; a resumed run continues up to this number")
    num_workers: int = doc(2, "data-loading processes (0: load in the training process)")
    train_batch_size: int = doc(64, "per device: the global batch is this x the ranks")
    test_batch_size: int = doc(64, "batch size of validation and test")
    prefetch_factor: int = doc(2, "batches each data-loading process keeps ready")
    amp: bool = doc(True, "mixed precision on CUDA (ignored elsewhere)")
    log_every_n_steps: int = doc(10, "also how often data-parallel ranks agree on a stop/checkpoint")
    devices: str = doc(
        "1",
        "data-parallel ranks per node (DDP via torchrun's launcher):\n"
        "a count, or auto (every visible GPU); 1: the plain path",
    )
    nnodes: int = doc(1, "nodes of a data-parallel run ...")
    rdzv_endpoint: str | None = doc(None, "... and where they meet: host:port on node 0")
    sync_bn: bool = doc(False, "SyncBatchNorm across the ranks")
    early_stopping: EarlyStoppingConfig = field(default_factory=EarlyStoppingConfig)


@dataclass
class MetricParams:
    metrics: list[str] = doc(
        ["accuracy", "f1_score", "precision", "recall"], "validation metrics; f1_score picks the best"
    )
    average: str = doc("weighted", "how per-class scores combine: weighted, macro or micro")


@dataclass
class CheckpointConfig:
    every_n_steps: int = doc(0, "also checkpoint every N steps (0: off) ...")
    # 300 s: at most 5 minutes of work lost by default.
    every_seconds: float = doc(
        300.0,
        "... and/or every T seconds (0: off), besides each epoch end;\nSIGTERM always checkpoints",
    )
    keep_last: int = doc(2, "retention: the newest N checkpoints ...")
    keep_best: int = doc(1, "... and the best K by validation gesture F1")
    # HaGRID's model.checkpoint (foreign_config maps it here).
    resume: str | None = doc(None, "where a run starts when no resume URI is given")
    resume_mode: str = doc("continue", "continue: full state; finetune: weights that fit, fresh optimizer")
    # A fine-tune re-initialises the heads that do not fit (other classes); anything more is an error unless
    # this is true (say, a checkpoint of another architecture whose backbone is only partly reusable).
    allow_backbone_reinit: bool = doc(False, "finetune: may re-initialise more than the heads")


@dataclass
class StorageConfig:
    uri: str = doc("runs", "local folder, file://... or s3://bucket/prefix")
    experiment: str = doc("handgesture", "a folder of runs: <uri>/<experiment>/<run_name>")
    run_name: str | None = doc(None, "default: the flow run's name, or a timestamp")
    block: str | None = doc(None, "saved Prefect block: s3-bucket/NAME, aws-credentials/NAME, ...")
    endpoint_url: str | None = doc(None, "S3-compatible servers (MinIO, Ceph, moto)")
    max_retries: int = doc(4, "S3 retries (exponential backoff) before a request fails")
    upload_timeout: float = doc(600.0, "seconds to wait at the end of a run for background uploads")


@dataclass
class TrackingConfig:
    tensorboard: bool = doc(True, "TensorBoard event files in the run folder")
    hparams: list[str] = doc([], "more config keys for TensorBoard's HParams (a sweep sets its own)")


@dataclass
class PrepareConfig:
    """Where the prepare step cuts its caches: in this process, or in shards on a Dask cluster."""

    dask: str | None = doc(
        None,
        "run prepare's shards on a Dask cluster: tcp://host:8786 (a scheduler),\n"
        "or local:N (N local worker processes); null: in this process",
    )
    shard_size: int = doc(2048, "samples per shard (each writes one part of the cache)")


@dataclass
class Config:
    # In configs/default.yaml's order, which is HaGRID's: the seed and device right after the data.
    dataset: DatasetConfig = field(default_factory=DatasetConfig)
    synthetic: SyntheticConfig = field(default_factory=SyntheticConfig)
    random_state: int = doc(42, "seeds the person split, the shuffling and the initial weights")
    device: str = doc("auto", "auto: cuda, then mps, then cpu")
    deterministic: bool = doc(True, "deterministic kernels, no cuDNN autotuning: repeatable runs")
    model: ModelConfig = field(default_factory=ModelConfig)
    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)
    scheduler: SchedulerConfig = field(default_factory=SchedulerConfig)
    train_params: TrainParams = field(default_factory=TrainParams)
    metric_params: MetricParams = field(default_factory=MetricParams)
    checkpoint: CheckpointConfig = field(default_factory=CheckpointConfig)
    storage: StorageConfig = field(default_factory=StorageConfig)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)
    prepare: PrepareConfig = field(default_factory=PrepareConfig)


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
    """`layer` with HaGRID's own keys mapped to ours; every key the schema lacks and every HaGRID key that
    cannot be mapped named in one error; no interpolation (checked before anything reads a value)."""
    raw = OmegaConf.to_container(layer, resolve=False)
    refuse_interpolations(raw, source)
    data, refused = mapped(raw, source)
    schema = OmegaConf.to_container(OmegaConf.structured(Config), resolve=False)
    unknown = unknown_keys(data, schema)
    if unknown:
        refused.append(
            f"unknown keys {', '.join(unknown)} (not in the schema; HaGRID v1's and v2's own keys are "
            "mapped: src/handgesture/foreign_config)"
        )
    if refused:
        raise ConfigError(f"invalid config from {source}: {'; '.join(refused)}")
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
