"""HaGRID v2's config keys (hukenovs/hagrid configs/<model>.yaml) mapped to ours or refused; the table is in
the package's docstring. Each function takes one block, maps what it can and records each refusal; the
data and model keys are in `hagrid_v2_data`."""

from __future__ import annotations

from typing import Any

from handgesture.foreign_config.hagrid_v2_data import map_v2_data
from handgesture.foreign_config.layer import Layer, close

# torch's defaults: v2 passes `params` straight to torch.optim.<name>, so an unset one has torch's value.
OPTIMIZER_DEFAULTS = {
    "SGD": {"lr": 0.001, "momentum": 0.0, "weight_decay": 0.0},
    "Adam": {"lr": 0.001, "momentum": 0.9, "weight_decay": 0.0},
    "AdamW": {"lr": 0.001, "momentum": 0.9, "weight_decay": 0.01},
}
# ... and to torch.optim.lr_scheduler.<name>: the fields of ours each takes, with torch's defaults.
SCHEDULER_DEFAULTS: dict[str, dict[str, Any]] = {
    "ReduceLROnPlateau": {
        **{"mode": "min", "factor": 0.1, "patience": 10, "threshold": 0.0001},
        **{"threshold_mode": "rel", "cooldown": 0, "min_lr": 0.0},
    },
    "StepLR": {"gamma": 0.1},
    "CosineAnnealingLR": {},
}


# Keys only HaGRID v2's files have (v1's and ours have none of them): a layer with one of them is v2's.
V2_ONLY_KEYS = ("early_stopping", "eval_every", "test_every", "criterion", "work_dir", "val_params")
V2_ONLY_BLOCKS = ("train_transforms", "val_transforms", "test_transforms", "test_params")


def is_v2_file(data: dict[str, Any]) -> bool:
    """Whether `data` (one config layer) is HaGRID v2's config file."""
    dataset = data.get("dataset") if isinstance(data.get("dataset"), dict) else {}
    return any(key in data for key in (*V2_ONLY_KEYS, *V2_ONLY_BLOCKS)) or "annotations_train" in dataset


def map_v2(layer: Layer) -> None:
    _top_level(layer)
    _loaders(layer)
    _optimizer(layer)
    _scheduler(layer)
    map_v2_data(layer)


def _top_level(layer: Layer) -> None:
    data = layer.data
    if "epochs" in data:
        layer.put("train_params.epochs", data.pop("epochs"))
    if "log_every" in data:
        layer.put("train_params.log_every_n_steps", data.pop("log_every"))
    if "work_dir" in data:  # v2 writes <work_dir>/<experiment_name>/, ours <uri>/<experiment>/<run>/
        layer.put("storage.uri", data.pop("work_dir"))
    if data.get("eval_every", 1) != 1:
        layer.refuse(
            f"eval_every={data['eval_every']}",
            "this pipeline validates (and counts early stopping) every epoch; set it to 1",
        )
    data.pop("eval_every", None)
    if "test_every" in data:
        layer.note(
            "test_every=%s ignored: the test split is evaluated after training", data.pop("test_every")
        )
    if data.get("criterion", "CrossEntropyLoss") != "CrossEntropyLoss":
        layer.refuse(f"criterion={data['criterion']}", "this pipeline trains with CrossEntropyLoss only")
    data.pop("criterion", None)
    stopping = layer.pop_block("early_stopping")
    if stopping is not None:
        for key in ("epochs", "metric"):
            if key in stopping:
                layer.put(f"train_params.early_stopping.{key}", stopping.pop(key))
        layer.keep_rest("early_stopping", stopping)


def _loaders(layer: Layer) -> None:
    train = layer.data.get("train_params")
    if isinstance(train, dict):
        if "batch_size" in train:
            layer.put("train_params.train_batch_size", train.pop("batch_size"))
        if train.pop("shuffle", True) is not True:
            layer.refuse("train_params.shuffle=false", "this pipeline always shuffles the training set")
    for block in ("val_params", "test_params"):
        params = layer.pop_block(block)
        if params is None:
            continue
        if "batch_size" in params:  # val's first: evaluation's batch size never changes its metrics
            layer.put("train_params.test_batch_size", params.pop("batch_size"))
        ignored = [key for key in ("num_workers", "prefetch_factor", "shuffle") if key in params]
        for key in ignored:
            params.pop(key)
        if ignored:
            layer.note("%s.%s ignored: evaluation shares train_params' loaders' settings", block, ignored)
        layer.keep_rest(block, params)


def _optimizer(layer: Layer) -> None:
    block = layer.data.get("optimizer")
    if not isinstance(block, dict) or not ({"name", "params"} & block.keys()):
        return
    name, params = block.pop("name", "SGD"), dict(block.pop("params", None) or {})
    if name not in OPTIMIZER_DEFAULTS:
        layer.refuse(f"optimizer.name={name}", f"this pipeline builds {', '.join(OPTIMIZER_DEFAULTS)}")
        return
    layer.put("optimizer.optimizer", name)
    if name != "SGD":
        _betas(layer, params)
    if name != "SGD" and "momentum" in params:
        layer.refuse("optimizer.params.momentum", f"{name} takes betas, not momentum")
        params.pop("momentum")
    if not close(params.pop("eps", 1e-8), 1e-8):
        layer.refuse("optimizer.params.eps", "only torch's default 1e-8 is used here")
    for key, default in OPTIMIZER_DEFAULTS[name].items():
        layer.put(f"optimizer.{key}", params.pop(key, default))
    for key in params:
        layer.refuse(f"optimizer.params.{key}", "not a parameter this pipeline sets")


def _betas(layer: Layer, params: dict[str, Any]) -> None:
    if "betas" not in params:
        return
    betas = params.pop("betas")
    if not isinstance(betas, list) or len(betas) != 2 or not close(betas[1], 0.999):
        layer.refuse("optimizer.params.betas", "the second beta is fixed at torch's 0.999 here")
        return
    layer.put("optimizer.momentum", betas[0])  # the first beta is our optimizer.momentum


def _scheduler(layer: Layer) -> None:
    block = layer.data.get("scheduler")
    if not isinstance(block, dict) or "params" not in block:
        return
    name, params = block.pop("name", None), dict(block.pop("params", None) or {})
    # v2 builds the named scheduler straight on the optimizer: its first step already runs at the full rate.
    # Our linear warm-up before it would be a schedule v2 never ran, so a v2 scheduler block turns it off.
    layer.put("scheduler.warmup_steps", 0)
    if name not in SCHEDULER_DEFAULTS:
        layer.refuse(f"scheduler.name={name}", f"this pipeline builds {', '.join(SCHEDULER_DEFAULTS)}")
        return
    layer.put("scheduler.name", name)
    if name == "CosineAnnealingLR":
        _cosine(layer, params)
    if name == "StepLR" and "step_size" not in params:
        layer.refuse("scheduler.params.step_size", "StepLR needs it")
    fields = {**SCHEDULER_DEFAULTS[name], **({"step_size": None} if name == "StepLR" else {})}
    for key in [key for key in params if key in fields]:
        layer.put(f"scheduler.{key}", params.pop(key))
    for key, default in SCHEDULER_DEFAULTS[name].items():
        layer.put(f"scheduler.{key}", default)
    for key in params:
        layer.refuse(f"scheduler.params.{key}", f"not a parameter of {name} this pipeline sets")


def _cosine(layer: Layer, params: dict[str, Any]) -> None:
    epochs = (layer.data.get("train_params") or {}).get("epochs")
    t_max = params.pop("T_max", None)
    if t_max is None or t_max != epochs:
        layer.refuse(
            f"scheduler.params.T_max={t_max}",
            "this pipeline anneals once, over all the run's epochs (past T_max, torch's rate rises again): "
            "set T_max to the file's epochs",
        )
    if params.pop("eta_min", 0) != 0:
        layer.refuse("scheduler.params.eta_min", "this pipeline anneals to 0")
