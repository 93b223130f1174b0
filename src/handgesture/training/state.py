"""The full training state <-> a checkpoint dict, both ways, in one place (Lightning's checkpoint connector).

`TrainingState.dump` writes what `TrainingState.restore` reads back: model, optimizer, scheduler, grad
scaler, progress counters and every RNG stream, plus what the checkpoint says about itself (config, model,
classes, image size, lineage). Restoring is a list of named steps, so a step cannot be forgotten on one side.
The byte format and the safe loader are `handgesture.checkpoints.format`.
"""

from __future__ import annotations

import copy
import logging
import random
import warnings
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
import torch

from handgesture.checkpoints.format import SCHEMA_VERSION, UNKNOWN_STEP, check_compatible
from handgesture.checkpoints.hagrid_v2 import ORIGIN as HAGRID_V2
from handgesture.checkpoints.hagrid_v2 import v2_scheduler_state, v2_snapshot_keys
from handgesture.config import Config, to_dict
from handgesture.errors import CheckpointError
from handgesture.models import head_tensors, layout_problems
from handgesture.training.early_stopping import StopState
from handgesture.training.engine import Progress, Trainer, settle
from handgesture.training.setup import global_batch_size

log = logging.getLogger(__name__)

# What a scheduler's state says about the schedule's form (its horizon, factors and base rates), as opposed
# to where it stands on it (last_epoch, _last_lr, ...).
_SCHEDULE_FORM = frozenset(
    {"T_max", "eta_min", "total_iters", "start_factor", "end_factor", "_milestones", "base_lrs"}
    | {"step_size", "gamma"}  # StepLR's
)
# Where a ReduceLROnPlateau stands: its settings (factor, patience, ...) are this run's config's.
_PLATEAU_POSITION = ("best", "num_bad_epochs", "cooldown_counter", "last_epoch", "_last_lr")


@dataclass
class Lineage:
    run_name: str = ""
    run_uri: str = ""
    flow_run_id: str | None = None
    parent: str | None = None
    config_hash: str = ""


def shape_of(config: Config) -> dict[str, Any]:
    """The shape-defining fields: a checkpoint restores only into a model of the same shape."""
    return {
        "model_name": config.model.name,
        "class_names": list(config.dataset.targets),
        "image_size": list(config.dataset.image_size),
        "full_frame": config.model.full_frame,
    }


class TrainingState:
    """Reads and writes `trainer`'s full training state as a checkpoint dict."""

    def __init__(self, trainer: Trainer, config: Config, steps_per_epoch: int):
        self.trainer, self.steps_per_epoch = trainer, steps_per_epoch
        self.global_batch = global_batch_size(config, trainer.cluster)
        self.config = to_dict(config)  # once: every checkpoint carries the same resolved config
        self.shape = shape_of(config)
        self.allow_backbone_reinit = config.checkpoint.allow_backbone_reinit
        self.lineage = Lineage()
        # The schedule as built, for checkpoints that hold none (HaGRID's): replayed up to their step.
        self._fresh_schedule = copy.deepcopy(trainer.scheduler.state_dict())
        self._fresh_lrs = [group["lr"] for group in trainer.optimizer.param_groups]

    def dump(self, metrics: dict[str, float]) -> dict[str, Any]:
        """The checkpoint of the trainer's live state; `metrics` are the epoch's, empty mid-epoch."""
        trainer = self.trainer
        settle(trainer)  # the loss counters up to date, and never a checkpoint of weights a NaN stepped into
        checkpoint = {
            "schema_version": SCHEMA_VERSION,
            "state_dict": {k: v.detach().cpu().clone() for k, v in trainer.model.state_dict().items()},
            "optimizer_state_dict": trainer.optimizer.state_dict(),
            "scheduler_state_dict": trainer.scheduler.state_dict(),
            "scaler_state_dict": trainer.scaler.state_dict(),
            "plateau_state_dict": trainer.plateau.state_dict() if trainer.plateau else None,
            "early_stopping": asdict(trainer.stop),
            "epoch": trainer.progress.epoch,
            "progress": asdict(trainer.progress),
            "rng": capture_rng(),
            "metrics": dict(metrics),
            "config": self.config,
            **self.shape,
            "lineage": asdict(self.lineage),
            "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        if self.shape["full_frame"]:  # HaGRID v2's trainer loads these; v1's crop layout has no v2 trainer
            checkpoint.update(self._v2_keys(checkpoint))
        return checkpoint

    def _v2_keys(self, checkpoint: dict[str, Any]) -> dict[str, Any]:
        """v2's snapshot keys over the same objects as ours (one copy of each tensor in the file)."""
        lrs = [group["lr"] for group in self.trainer.optimizer.param_groups]
        scheduler = v2_scheduler_state(
            self.config, checkpoint["plateau_state_dict"], lrs, checkpoint["epoch"]
        )
        return v2_snapshot_keys(
            checkpoint["state_dict"],
            checkpoint["optimizer_state_dict"],
            scheduler,
            checkpoint["epoch"],
            checkpoint["progress"],
        )

    def restore(self, checkpoint: dict[str, Any], source: str) -> None:
        """Continue exactly where `checkpoint` stopped; a checkpoint of another shape is an error."""
        check_compatible(checkpoint, self.shape, source)
        steps = (
            self.restore_model,
            self.restore_optimizer,
            self.restore_progress,
            self.restore_scheduler,  # after the progress: a checkpoint without one is replayed to its step
            self.restore_plateau,
            self.restore_early_stopping,  # after the progress: a checkpoint without it starts from its best
            self.restore_scaler,
            self.restore_rng,
        )
        for step in steps:
            step(checkpoint, source)

    def restore_model(self, checkpoint: dict[str, Any], source: str) -> None:
        problems = layout_problems(self.trainer.model, checkpoint["state_dict"])
        if problems:
            raise CheckpointError(
                f"{source} does not fit a {self.shape['model_name']} with {len(self.shape['class_names'])} "
                f"classes: {'; '.join(problems)}"
            )
        self.trainer.model.load_state_dict(checkpoint["state_dict"])

    def restore_optimizer(self, checkpoint: dict[str, Any], source: str) -> None:
        if "optimizer_state_dict" not in checkpoint:  # a weights file, or a snapshot saved without one
            log.info("%s holds no optimizer state: the optimizer starts fresh at this run's settings", source)
        _load_part(self.trainer.optimizer, checkpoint, "optimizer_state_dict")

    def restore_progress(self, checkpoint: dict[str, Any], source: str) -> None:
        progress = progress_of(checkpoint)
        if progress.global_step == UNKNOWN_STEP:  # HaGRID counts epochs only
            progress.global_step = progress.epoch * self.steps_per_epoch
        self.trainer.progress = progress

    def restore_scheduler(self, checkpoint: dict[str, Any], source: str) -> None:
        saved = checkpoint.get("scheduler_state_dict")
        if saved is not None and schedule_form(saved) == schedule_form(self._fresh_schedule):
            self.trainer.scheduler.load_state_dict(saved)
        elif checkpoint.get("origin") == HAGRID_V2 and "optimizer_state_dict" in checkpoint:
            self._continue_at_rates(self.trainer.progress.global_step)
        elif saved is None:  # HaGRID's: counted in this run's steps
            self._replay_schedule(self.trainer.progress.global_step)
        else:
            # More epochs, another world size (another step count per epoch), another learning rate or
            # schedule: the saved one would end at the wrong step (a cosine past its end climbs back up), so
            # this run's schedule continues from where the checkpoint stands in its epoch.
            progress = self.trainer.progress
            step = progress.epoch * self.steps_per_epoch + progress.position // self.global_batch
            log.info(
                "the learning-rate schedule saved in %s has another form than this run's (%s epochs of %s "
                "steps): continuing this run's schedule from its step %s",
                source,
                self.config["train_params"]["epochs"],
                self.steps_per_epoch,
                step,
            )
            self._replay_schedule(step)

    def _continue_at_rates(self, steps: int) -> None:
        """A v2 snapshot: this run's schedule at its step, continuing from the rates the snapshot's
        optimizer holds (a plateau's or a decay's reductions stay), never from this config's `lr`.

        v2 has no warm-up, so ours counts as over; torch's schedulers step recursively from the current
        rate, so the schedule's later changes (decays, cosine) apply to the snapshot's rates."""
        rates = [group["lr"] for group in self.trainer.optimizer.param_groups]
        self._replay_schedule(max(steps, int(self.config["scheduler"]["warmup_steps"])))
        for group, rate in zip(self.trainer.optimizer.param_groups, rates, strict=True):
            group["lr"] = rate
        self.trainer.scheduler._last_lr = list(rates)  # what get_last_lr() reports until the next step

    def restore_plateau(self, checkpoint: dict[str, Any], source: str) -> None:
        """ReduceLROnPlateau's position (its best loss, the epochs without improvement, the cooldown); the
        reduced rate itself is the optimizer's. A checkpoint of another mode's plateau, or of none, starts
        this one fresh."""
        saved, plateau = checkpoint.get("plateau_state_dict"), self.trainer.plateau
        if plateau is None or saved is None or saved.get("mode") != plateau.mode:
            return
        # Older torch (v2's snapshots) saves no `_last_lr` for a plateau: what it lacks stays as built.
        position = {key: saved[key] for key in _PLATEAU_POSITION if key in saved}
        plateau.load_state_dict(plateau.state_dict() | position)

    def restore_early_stopping(self, checkpoint: dict[str, Any], source: str) -> None:
        """The early-stopping rule's best and whether it stopped the run; a checkpoint from before the rule
        was kept (or HaGRID's) counts its own best epoch as the rule's best."""
        if "early_stopping" in checkpoint:
            try:
                self.trainer.stop = StopState(**checkpoint["early_stopping"])
            except TypeError:
                raise CheckpointError(
                    f"{source}: its early_stopping state is not {list(asdict(StopState()))}"
                ) from None
            return
        progress = self.trainer.progress
        self.trainer.stop = StopState(best=progress.best_metric, best_epoch=max(progress.best_epoch, 0))

    def _replay_schedule(self, steps: int) -> None:
        """The schedule as it would be after `steps` steps: never the restored rate times the warm-up's
        factors, which a fresh scheduler stepped on a loaded optimizer would give (up to 1 / start_factor)."""
        for group, lr in zip(self.trainer.optimizer.param_groups, self._fresh_lrs, strict=True):
            group["lr"] = lr
            group.pop("initial_lr", None)  # the loaded optimizer's; the scheduler's base_lrs are ours
        scheduler = self.trainer.scheduler
        scheduler.load_state_dict(copy.deepcopy(self._fresh_schedule))
        with warnings.catch_warnings():  # "scheduler.step() before optimizer.step()": intended here
            warnings.simplefilter("ignore", UserWarning)
            for _ in range(steps):
                scheduler.step()

    def restore_scaler(self, checkpoint: dict[str, Any], source: str) -> None:
        _load_part(self.trainer.scaler, checkpoint, "scaler_state_dict")

    def restore_rng(self, checkpoint: dict[str, Any], source: str) -> None:
        if "rng" in checkpoint:
            restore_rng(checkpoint["rng"])

    def restore_weights(self, checkpoint: dict[str, Any], source: str) -> list[str]:
        """Fine-tune start: load the weights that fit, keep the rest as initialised; returns those names.

        Only the heads may be re-initialised (other classes), unless `checkpoint.allow_backbone_reinit`."""
        own, theirs = self.trainer.model.state_dict(), checkpoint["state_dict"]
        skipped = sorted(k for k in own if k not in theirs or theirs[k].shape != own[k].shape)
        heads = head_tensors(self.shape["model_name"], skipped, self.shape["full_frame"])
        beyond_heads = sorted(set(skipped) - set(heads))
        if beyond_heads and not self.allow_backbone_reinit:
            raise CheckpointError(
                f"fine-tuning a {self.shape['model_name']} from {source} would re-initialise "
                f"{len(beyond_heads)} of {len(own)} tensors beyond the heads (e.g. "
                f"{', '.join(beyond_heads[:5])}): it holds another architecture. Set "
                "checkpoint.allow_backbone_reinit=true to fine-tune from it anyway"
            )
        fits = {k: v for k, v in theirs.items() if k in own and k not in skipped}
        self.trainer.model.load_state_dict(fits, strict=False)
        self.trainer.finetune_skipped = skipped
        return skipped


def schedule_form(state: dict[str, Any]) -> dict[str, Any]:
    """The schedule's form in a scheduler's `state_dict` (SequentialLR's parts included), not its position."""
    form = {key: value for key, value in state.items() if key in _SCHEDULE_FORM}
    if "_schedulers" in state:
        form["_schedulers"] = [schedule_form(part) for part in state["_schedulers"]]
    return form


def _load_part(part, checkpoint: dict[str, Any], key: str) -> None:
    if key in checkpoint:  # a tutorial-style file holds weights and an optimizer only
        part.load_state_dict(checkpoint[key])


def progress_of(checkpoint: dict[str, Any]) -> Progress:
    if "progress" in checkpoint:
        return Progress(**checkpoint["progress"])
    return Progress(epoch=int(checkpoint.get("epoch", 0)))  # a tutorial-style file: weights and epoch only


def capture_rng() -> dict[str, Any]:
    """Every RNG stream training touches, as tensors and plain values."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    return {
        "python": random.getstate(),
        "numpy": {
            "kind": kind,
            "keys": torch.from_numpy(keys.astype(np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "gauss": float(gauss),
        },
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }


def restore_rng(state: dict[str, Any]) -> None:
    random.setstate(_as_tuple(state["python"]))
    numpy_state = state["numpy"]
    np.random.set_state(
        (
            numpy_state["kind"],
            numpy_state["keys"].numpy().astype(np.uint32),
            numpy_state["pos"],
            numpy_state["has_gauss"],
            numpy_state["gauss"],
        )
    )
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _as_tuple(value: Any) -> Any:
    # torch.save keeps tuples, but be lenient with lists from other writers.
    return tuple(_as_tuple(v) for v in value) if isinstance(value, list | tuple) else value
