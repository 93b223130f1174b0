"""Range checks the config's type system cannot express: every one names its key, the value and what was
expected, so a mistake stops a run before it starts instead of training on with NaN or failing later."""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable
from typing import Any

import torch

from handgesture.errors import ConfigError
from handgesture.models import ARCHITECTURES, FULL_FRAME_ARCHITECTURES, architectures

OPTIMIZERS = ("SGD", "Adam", "AdamW")
# What follows the warm-up (`scheduler.name`); `training/setup.build_schedule` builds each.
SCHEDULERS = ("none", "CosineAnnealingLR", "StepLR", "ReduceLROnPlateau")
AVERAGES = ("weighted", "macro", "micro")
METRICS = ("accuracy", "f1_score", "precision", "recall")
MAX_IMAGE_SIDE = 4096
_DEVICE = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")
# A Dask scheduler's address (tcp:// or tls://, host and port), or local:N for a cluster this run starts.
_DASK = re.compile(r"^((tcp|tls)://[A-Za-z0-9_.\-\[\]:]+:\d{1,5}|local:[1-9]\d{0,2})$")
# The Dask schedulers a run may use, listed by whoever runs the worker (comma-separated addresses), never
# by a run: a Dask client sends the run's config and tasks to its scheduler and unpickles what comes back,
# so an address from a parameter or config file alone could carry the data off and run code on the worker.
DASK_SCHEDULERS_ENV = "HANDGESTURE_DASK_SCHEDULERS"
# A run's or experiment's name is one folder (or S3 key segment) under the storage root.
_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_. -]*$")
RESERVED_NAMES = ("best",)  # <storage>/<experiment>/best means the experiment's current best
# The config keys whose values may hold an OmegaConf interpolation (`${...}`): none, on purpose. Overrides are
# deployment parameters that anyone who may start a run sets, and OmegaConf resolves `${oc.env:NAME}` from
# the worker's environment, so `storage.run_name=${oc.env:AWS_SECRET_ACCESS_KEY}` would put a credential
# into the run's folder name, config.yaml, manifest, checkpoints and logs. A key added here gets resolved
# from config files, overrides and checkpoints alike, so it must never name a place data goes; its value is
# never echoed in an error (`validate`).
INTERPOLATION_ALLOWED: frozenset[str] = frozenset()
_INTERPOLATION = "${"  # also matches an escaped `\${...}`, which later passes through OmegaConf once more


def _rule(key: str, expected: str, ok: Callable[[Any], bool]) -> tuple[str, str, Callable[[Any], bool]]:
    return key, expected, ok


def _finite(value) -> bool:
    return isinstance(value, int | float) and math.isfinite(value)


RULES = [
    _rule("train_params.epochs", "> 0", lambda v: v > 0),
    _rule("train_params.train_batch_size", "> 0", lambda v: v > 0),
    _rule("train_params.test_batch_size", "> 0", lambda v: v > 0),
    _rule("train_params.num_workers", ">= 0", lambda v: v >= 0),
    _rule("train_params.prefetch_factor", ">= 1", lambda v: v >= 1),
    _rule("train_params.log_every_n_steps", ">= 1", lambda v: v >= 1),
    _rule(
        "train_params.devices", "auto or a count >= 1", lambda v: v == "auto" or (v.isdigit() and int(v) >= 1)
    ),
    _rule("train_params.nnodes", ">= 1", lambda v: v >= 1),
    _rule("optimizer.optimizer", f"one of {OPTIMIZERS}", lambda v: v in OPTIMIZERS),
    _rule("optimizer.lr", "a finite number > 0", lambda v: _finite(v) and v > 0),
    _rule("optimizer.momentum", "a finite number >= 0", lambda v: _finite(v) and v >= 0),
    _rule("optimizer.weight_decay", "a finite number >= 0", lambda v: _finite(v) and v >= 0),
    _rule("scheduler.start_factor", "in (0, 1]", lambda v: _finite(v) and 0 < v <= 1),
    _rule("scheduler.warmup_steps", ">= 0", lambda v: v >= 0),
    _rule("scheduler.name", f"one of {list(SCHEDULERS)}", lambda v: v in SCHEDULERS),
    _rule("scheduler.step_size", ">= 1", lambda v: v >= 1),
    _rule("scheduler.gamma", "in (0, 1]", lambda v: _finite(v) and 0 < v <= 1),
    _rule("scheduler.mode", "min or max", lambda v: v in ("min", "max")),
    _rule("scheduler.factor", "in (0, 1)", lambda v: _finite(v) and 0 < v < 1),
    _rule("scheduler.patience", ">= 0", lambda v: v >= 0),
    _rule("scheduler.threshold", "a finite number >= 0", lambda v: _finite(v) and v >= 0),
    _rule("scheduler.threshold_mode", "rel or abs", lambda v: v in ("rel", "abs")),
    _rule("scheduler.cooldown", ">= 0", lambda v: v >= 0),
    _rule("scheduler.min_lr", "a finite number >= 0", lambda v: _finite(v) and v >= 0),
    _rule("train_params.early_stopping.epochs", ">= 0 (0: off)", lambda v: v >= 0),
    _rule("train_params.early_stopping.metric", "in [0, 1)", lambda v: _finite(v) and 0 <= v < 1),
    _rule("dataset.val_fraction", "in (0, 1)", lambda v: _finite(v) and 0 < v < 1),
    _rule("dataset.subset", "-1 (all) or > 0", lambda v: v == -1 or v > 0),
    _rule("dataset.cache_format", "raw or jpeg", lambda v: v in ("raw", "jpeg")),
    _rule("dataset.cache_quality", "in 1..100", lambda v: 1 <= v <= 100),
    _rule("dataset.cache_levels", "in 1..4", lambda v: 1 <= v <= 4),
    _rule(
        "dataset.image_size",
        f"[height, width], each in 16..{MAX_IMAGE_SIDE}",
        lambda v: len(v) == 2 and all(16 <= side <= MAX_IMAGE_SIDE for side in v),
    ),
    _rule("dataset.targets", ">= 2 distinct class names", lambda v: len(v) >= 2 and len(set(v)) == len(v)),
    _rule("checkpoint.every_n_steps", ">= 0 (0: off)", lambda v: v >= 0),
    _rule("checkpoint.every_seconds", "a finite number >= 0 (0: off)", lambda v: _finite(v) and v >= 0),
    _rule("checkpoint.keep_last", ">= 0", lambda v: v >= 0),
    _rule("checkpoint.keep_best", ">= 0", lambda v: v >= 0),
    _rule("checkpoint.resume_mode", "continue or finetune", lambda v: v in ("continue", "finetune")),
    _rule("storage.max_retries", ">= 0", lambda v: v >= 0),
    _rule("storage.upload_timeout", "a finite number > 0", lambda v: _finite(v) and v > 0),
    _rule("metric_params.average", f"one of {AVERAGES}", lambda v: v in AVERAGES),
    _rule(
        "metric_params.metrics",
        f"a list from {METRICS} that includes f1_score (what 'best' means)",
        lambda v: set(v) <= set(METRICS) and "f1_score" in v,
    ),
    _rule(
        "model.name",
        f"one of {list(ARCHITECTURES)} (with model.full_frame=true: {list(FULL_FRAME_ARCHITECTURES)})",
        lambda v: v in ARCHITECTURES or v in FULL_FRAME_ARCHITECTURES,
    ),
    _rule("device", "auto, cpu, mps, cuda or cuda:N", lambda v: bool(_DEVICE.match(v))),
    _rule(
        "prepare.dask",
        "null, tcp://HOST:PORT (a Dask scheduler) or local:N (N >= 1 local workers)",
        lambda v: v is None or bool(_DASK.match(v)),
    ),
    _rule("prepare.shard_size", ">= 1", lambda v: v >= 1),
    _rule("storage.experiment", "one folder name (no '/', '..' or 'best')", lambda v: _is_name(v)),
    _rule(
        "storage.run_name",
        "null or one folder name (no '/', '..' or 'best')",
        lambda v: v is None or _is_name(v),
    ),
]


def refuse_interpolations(data: Any, source: str, prefix: str = "") -> None:
    """An OmegaConf interpolation anywhere in `data` (one config layer as plain containers, unresolved) is
    an error naming its key and `source`, never its value: resolving it could read a secret."""
    for key, value in _string_leaves(data, prefix):
        if _INTERPOLATION in value and key not in INTERPOLATION_ALLOWED:
            raise ConfigError(
                f"{key} in {source} holds an interpolation ('${{...}}'): interpolations and resolvers are "
                "off for config files, overrides and checkpoints (they could read the worker's environment); "
                "write the value itself"
            )


def _string_leaves(data: Any, key: str) -> list[tuple[str, str]]:
    """(dotted key, string) for every string in nested dicts and lists; a list's items carry its key."""
    if isinstance(data, str):
        return [(key, data)]
    if isinstance(data, dict):
        return [leaf for k, v in data.items() for leaf in _string_leaves(v, f"{key}.{k}" if key else str(k))]
    if isinstance(data, list | tuple):
        return [leaf for item in data for leaf in _string_leaves(item, key)]
    return []


def _shown(key: str, value: Any) -> str:
    """`value` for an error message; an allowed interpolation's resolved value could be a secret."""
    return "a value that is not shown (it may be resolved)" if key in INTERPOLATION_ALLOWED else repr(value)


def _is_name(value: str) -> bool:
    return bool(_NAME.match(value)) and value not in ("..", ".") and value not in RESERVED_NAMES


def config_value(config, dotted: str):
    """The value of a dotted key (`optimizer.lr`) of a Config."""
    value = config
    for part in dotted.split("."):
        value = getattr(value, part)
    return value


def validate(config) -> None:
    """Every rule, then what depends on several keys or on this machine."""
    for key, expected, ok in RULES:
        value = config_value(config, key)
        if not ok(value):
            raise ConfigError(f"{key} must be {expected}, got {_shown(key, value)}")
    if config.scheduler.cosine and config.scheduler.name not in ("none", "CosineAnnealingLR"):
        raise ConfigError(
            f"scheduler.cosine=true and scheduler.name={config.scheduler.name!r} name two schedules: "
            "expected one (cosine is the older spelling of name=CosineAnnealingLR)"
        )
    _check_architecture(config.model.name, config.model.full_frame)
    if config.checkpoint.keep_last + config.checkpoint.keep_best < 1:
        raise ConfigError(
            "checkpoint.keep_last and checkpoint.keep_best are both 0: at least one committed checkpoint "
            "must be kept (set keep_last >= 1)"
        )
    for key in config.tracking.hparams:
        try:
            config_value(config, key)
        except AttributeError:
            shown = _shown("tracking.hparams", key)
            raise ConfigError(f"tracking.hparams: {shown} is not a config key") from None
    _check_device_exists(config.device)
    check_dask(config.prepare.dask)


def _check_architecture(name: str, full_frame: bool) -> None:
    known = architectures(full_frame)
    if name not in known:
        kind, other = ("a full-frame", "false") if full_frame else ("a hand-crop", "true")
        raise ConfigError(
            f"model.name={name!r} is not {kind} architecture: expected one of {list(known)} with "
            f"model.full_frame={str(full_frame).lower()} (or set model.full_frame={other})"
        )


def check_dask(address: str | None) -> None:
    """`prepare.dask` as this machine allows it: local:N within its cores, tcp:// or tls:// only when its
    operator lists the address in HANDGESTURE_DASK_SCHEDULERS. Checked with the config (before a run
    folder or cache is written) and again where the flow connects."""
    if address is None:
        return
    if address.startswith("local:"):
        workers, cores = int(address.split(":", 1)[1]), _usable_cores()
        if workers > cores:
            raise ConfigError(
                f"prepare.dask=local:{workers} starts {workers} worker processes, but this machine gives "
                f"this process {cores} cores (each worker decodes on one): expected local:1 .. local:{cores}"
            )
        return
    if address not in dask_schedulers():
        raise ConfigError(
            f"prepare.dask={address!r} is not in {DASK_SCHEDULERS_ENV}, this machine's list of the Dask "
            "schedulers a run may use (a run's parameters and config files may not choose where its data "
            "and tasks go): to allow it, whoever runs this worker adds the address, exactly as written "
            "here, to that variable (comma-separated) in the environment of the process that runs the flow"
        )


def dask_schedulers() -> frozenset[str]:
    """The scheduler addresses this machine's operator allows (empty when the variable is unset)."""
    listed = os.environ.get(DASK_SCHEDULERS_ENV, "")
    return frozenset(address.strip() for address in listed.split(",") if address.strip())


def _usable_cores() -> int:
    """The cores this process may run on (a container's or taskset's share, not the machine's count)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def _check_device_exists(device: str) -> None:
    shown = _shown("device", device)
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"device={shown}, but this machine has no CUDA device (use auto or cpu)")
    if device.startswith("cuda:") and int(device.split(":")[1]) >= torch.cuda.device_count():
        raise ConfigError(f"device={shown}, but this machine has {torch.cuda.device_count()} CUDA devices")
    if device == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise ConfigError("device='mps', but this machine has no MPS device (use auto or cpu)")
