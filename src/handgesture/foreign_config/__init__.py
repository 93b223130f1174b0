"""HaGRID's and the tutorial's config files, read as ours: their keys mapped to ours or refused with a
reason, so HaGRID v1's `classifier/config/default.yaml` and v2's `configs/<model>.yaml` run as given with
`--config`. Every refusal and every unknown key of a file is named in one error (`config._checked`).

HaGRID v1 (`hagrid_v1`; v2's files carry these too):
    experiment_name     -> storage.experiment (unless the file sets that too; so for every row)
    model.checkpoint    -> checkpoint.resume when the file exists (HaGRID loads it only then; its default
                           "/path/to/chackpoint" and the tutorial's "best_model.pth" usually do not)
    model.start_epoch   0 is the default; another value needs the checkpoint above, whose own epoch wins
    model.full_frame    ours as it is: false trains on hand crops, true on full frames
HaGRID v2 (`hagrid_v2`):
    epochs              -> train_params.epochs
    log_every           -> train_params.log_every_n_steps
    work_dir            -> storage.uri (v2 writes <work_dir>/<experiment_name>/, we <uri>/<experiment>/<run>/)
    eval_every          1 (ours validates every epoch); another value is refused: early stopping counts them
    test_every          ignored, logged: the test split is evaluated after training, never changes it
    criterion           CrossEntropyLoss (ours); another is refused
    early_stopping.epochs|metric -> train_params.early_stopping.epochs|metric
    train_params.batch_size -> train_params.train_batch_size; num_workers, prefetch_factor are ours already
    train_params.shuffle true (ours always shuffles); false is refused
    val_params|test_params.batch_size -> train_params.test_batch_size (val's wins); their num_workers,
                           prefetch_factor, shuffle ignored, logged: evaluation uses train_params' loaders,
                           and neither the order nor the workers change its metrics
    optimizer.name      -> optimizer.optimizer: SGD, Adam, AdamW; another is refused
    optimizer.params    lr, weight_decay, momentum (SGD), betas (Adam/AdamW: [b1, 0.999], b1 ->
                           optimizer.momentum), eps (torch's 1e-8 only) -> ours; one left unset takes
                           torch's default, as in v2 (SGD's momentum 0, AdamW's weight_decay 0.01);
                           others are refused
    scheduler.name      -> scheduler.name: ReduceLROnPlateau, StepLR, CosineAnnealingLR; another is refused
    scheduler.params    ReduceLROnPlateau: mode, factor, patience, threshold, threshold_mode, cooldown,
                           min_lr;
                           StepLR: step_size, gamma; CosineAnnealingLR: T_max only = epochs (ours anneals
                           once over the run), eta_min only 0; unset ones take torch's defaults; others
                           refused. A v2 scheduler block sets scheduler.warmup_steps=0: v2 has no warm-up
    dataset.annotations_train|val|test -> dataset.annotations|val_annotations|test_annotations
    dataset.dataset_train|val|test -> dataset.dataset when they name one folder; different ones are refused
    dataset.img_size    -> dataset.image_size [s, s]
    dataset.img_mean|img_std  v2's defaults ([0.54, 0.499, 0.474], [0.234, 0.235, 0.231]), which the
                           full-frame models apply inside; other values refused
    dataset.subset|targets  ours already
    dataset.one_class   false; true is refused
    train_transforms|val_transforms|test_transforms  v2's chain LongestMaxSize, PadIfNeeded, Normalize,
                           ToTensorV2 at p=1: its size must be img_size (or sets dataset.image_size), its
                           mean/std v2's defaults, its padding constant (border_mode 0) with 144, the
                           letterbox of the full-frame data path; any other transform is refused by name
    model.name          ResNet18, ResNet152, MobileNetV3_small, MobileNetV3_large, ConvNeXt_base, VitB16:
                           v2's full-frame architectures
    model.pretrained    ours; model.pretrained_backbone false (v2's classifiers never read it); true refused
    model.full_frame    v2's files do not carry it, and v2's classifiers see full frames: a v2 file (one
                           with any of v2's own keys) sets model.full_frame=true unless it sets it itself
"""

from __future__ import annotations

import copy
from typing import Any

from handgesture.errors import ConfigError
from handgesture.foreign_config.hagrid_v1 import map_v1
from handgesture.foreign_config.hagrid_v2 import is_v2_file, map_v2
from handgesture.foreign_config.layer import Layer


def mapped(data: dict[str, Any], source: str) -> tuple[dict[str, Any], list[str]]:
    """`data` (one config layer as plain containers) with HaGRID's keys replaced by ours, and one line per
    key that cannot be mapped (`key: reason`)."""
    layer = Layer(copy.deepcopy(data), source)
    map_v1(layer)
    if is_v2_file(data):  # v2's classifiers are full-frame ones, and its files never say so
        layer.put("model.full_frame", True)
    map_v2(layer)
    return layer.data, layer.refused


def translate(data: dict[str, Any], source: str) -> dict[str, Any]:
    """`mapped`'s data; its refusals, if any, raised as one error."""
    data, refused = mapped(data, source)
    if refused:
        raise ConfigError(f"invalid config from {source}: {'; '.join(refused)}")
    return data


def unknown_keys(data: dict[str, Any], schema: dict[str, Any], prefix: str = "") -> list[str]:
    """Every dotted key of `data` that `schema` (the defaults, as plain containers) does not have."""
    unknown = []
    for key, value in data.items():
        dotted = f"{prefix}{key}"
        if key not in schema:
            unknown.append(dotted)
        elif isinstance(value, dict) and isinstance(schema[key], dict):
            unknown += unknown_keys(value, schema[key], f"{dotted}.")
    return unknown


def known_part(data: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    """`data` without the keys `schema` lacks (HaGRID's configs carry some of their own, like num_classes)."""
    known = {}
    for key, value in data.items():
        if key in schema:
            nested = isinstance(value, dict) and isinstance(schema[key], dict)
            known[key] = known_part(value, schema[key]) if nested else value
    return known
