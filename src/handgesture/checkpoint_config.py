"""What a checkpoint's embedded config may decide for the run that continues it or the evaluation that scores
it: the model, the data's shape and the training recipe. Never where anything is written or sent (storage,
caches, endpoints, blocks, tracking), which devices or nodes run, what gets generated, nor where to resume
from: a checkpoint is a file from outside (DESIGN.md, trust boundaries), and those settings are the user's.

`CHECKPOINT_KEYS` classifies every key of the schema; a test fails when a new key is left out of it.
"""

from __future__ import annotations

import logging
from typing import Any

from omegaconf import OmegaConf

from handgesture.config import Config
from handgesture.config_checks import refuse_interpolations
from handgesture.foreign_config import known_part, translate

log = logging.getLogger(__name__)
TAKE, DROP = "take", "drop"

CHECKPOINT_KEYS: dict[str, str] = {
    # Read locations: taken. They name the data the model was trained on, which a resume continues on and
    # `evaluate` scores on. Reading them writes and sends nothing anywhere: every key that names where data
    # goes (caches, storage, endpoints) is dropped below, and so is synthetic.* (generation writes files at
    # these paths; it stays the user's default, off). An attacker's path only changes which local files are
    # read, with results going to the user's own storage.
    "dataset.annotations": TAKE,
    "dataset.dataset": TAKE,
    "dataset.val_annotations": TAKE,
    "dataset.test_annotations": TAKE,
    # The data's shape and how the pixels are made (JPEG quality changes what the model sees).
    "dataset.targets": TAKE,
    "dataset.image_size": TAKE,
    "dataset.subset": TAKE,
    "dataset.val_fraction": TAKE,
    "dataset.cache_format": TAKE,
    "dataset.cache_quality": TAKE,
    "dataset.cache_levels": TAKE,
    # Where crop caches are written and published (a folder or s3://): the user's.
    "dataset.cache_dir": DROP,
    "dataset.cache_uri": DROP,
    # Generation writes a dataset to disk.
    "synthetic.generate_if_missing": DROP,
    "synthetic.hagrid_version": DROP,
    "synthetic.per_class": DROP,
    "synthetic.users": DROP,
    "synthetic.frame_size": DROP,
    # The model and the recipe.
    "model.name": TAKE,
    "model.pretrained": TAKE,
    "model.freezed": TAKE,
    "model.full_frame": TAKE,
    "optimizer.optimizer": TAKE,
    "optimizer.lr": TAKE,
    "optimizer.momentum": TAKE,
    "optimizer.weight_decay": TAKE,
    "scheduler.start_factor": TAKE,
    "scheduler.warmup_steps": TAKE,
    "scheduler.cosine": TAKE,
    "scheduler.name": TAKE,
    "scheduler.step_size": TAKE,
    "scheduler.gamma": TAKE,
    "scheduler.mode": TAKE,
    "scheduler.factor": TAKE,
    "scheduler.patience": TAKE,
    "scheduler.threshold": TAKE,
    "scheduler.threshold_mode": TAKE,
    "scheduler.cooldown": TAKE,
    "scheduler.min_lr": TAKE,
    "train_params.epochs": TAKE,
    "train_params.train_batch_size": TAKE,
    "train_params.amp": TAKE,
    "train_params.sync_bn": TAKE,
    "train_params.early_stopping.epochs": TAKE,
    "train_params.early_stopping.metric": TAKE,
    "metric_params.metrics": TAKE,  # what "best" means
    "metric_params.average": TAKE,
    "random_state": TAKE,
    "deterministic": TAKE,
    # This machine: loader processes and memory, devices, nodes and where they meet (a host:port the
    # worker would connect to), how often it logs.
    "train_params.num_workers": DROP,
    "train_params.test_batch_size": DROP,
    "train_params.prefetch_factor": DROP,
    "train_params.log_every_n_steps": DROP,
    "train_params.devices": DROP,
    "train_params.nnodes": DROP,
    "train_params.rdzv_endpoint": DROP,
    "device": DROP,
    # Where to resume from and how this run's checkpoints are written and kept; the consent to re-initialise
    # a backbone is the user's to give.
    "checkpoint.every_n_steps": DROP,
    "checkpoint.every_seconds": DROP,
    "checkpoint.keep_last": DROP,
    "checkpoint.keep_best": DROP,
    "checkpoint.resume": DROP,
    "checkpoint.resume_mode": DROP,
    "checkpoint.allow_backbone_reinit": DROP,
    # Where the run is written, with which credentials (a block) and through which endpoint.
    "storage.uri": DROP,
    "storage.experiment": DROP,
    "storage.run_name": DROP,
    "storage.block": DROP,
    "storage.endpoint_url": DROP,
    "storage.max_retries": DROP,
    "storage.upload_timeout": DROP,
    "tracking.tensorboard": DROP,
    "tracking.hparams": DROP,
    # Which machines prepare the data (a scheduler address to connect to): this run's own.
    "prepare.dask": DROP,
    "prepare.shard_size": DROP,
}


def checkpoint_config(checkpoint: dict[str, Any], source: str) -> dict[str, Any]:
    """The part of the config `checkpoint` was trained with that a run continuing it (or an evaluation of
    it) takes: `CHECKPOINT_KEYS`' taken keys; the shape fields are the weights' own."""
    config = dict(checkpoint.get("config") or {})
    refuse_interpolations(config, f"the config of checkpoint {source}")
    if checkpoint.get("origin") == "hagrid":  # HaGRID's config: its keys mapped, its own extras left out
        schema = OmegaConf.to_container(OmegaConf.structured(Config))
        config = known_part(translate(config, source), schema)
    config, dropped = taken_part(config)
    if dropped:
        log.info("%s: its config's %s are not taken (they are this run's own)", source, ", ".join(dropped))
    model, dataset = dict(config.get("model") or {}), dict(config.get("dataset") or {})
    model["name"] = checkpoint["model_name"]  # the weights' own, whatever the config said (the tutorial's)
    model["full_frame"] = bool(checkpoint.get("full_frame", False))
    dataset["targets"], dataset["image_size"] = checkpoint["class_names"], checkpoint["image_size"]
    return {**config, "model": model, "dataset": dataset}


def taken_part(data: dict[str, Any], prefix: str = "") -> tuple[dict[str, Any], list[str]]:
    """`data` without its dropped keys, and their dotted names. A key the table does not know is kept, so
    the config check refuses it by name (a checkpoint of another version), as it would in a file."""
    kept: dict[str, Any] = {}
    dropped: list[str] = []
    for key, value in data.items():
        dotted = f"{prefix}{key}"
        if CHECKPOINT_KEYS.get(dotted) == DROP:
            dropped.append(dotted)
        elif isinstance(value, dict) and dotted not in CHECKPOINT_KEYS:
            kept[key], inner = taken_part(value, f"{dotted}.")
            dropped += inner
        else:
            kept[key] = value
    return kept, dropped


def layered(own: dict[str, Any], taken: dict[str, Any]) -> dict[str, Any]:
    """This run's own config with a checkpoint's taken keys over it: the checkpoint's recipe, in this run's
    place (its storage, caches and devices stay those of `own`). Sections merge; values, lists included,
    are replaced whole."""
    merged = dict(own)
    for key, value in taken.items():
        mine = merged.get(key)
        merged[key] = layered(mine, value) if isinstance(value, dict) and isinstance(mine, dict) else value
    return merged
