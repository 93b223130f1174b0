"""Evaluate a model on a held-out split: per-class and weighted metrics for both heads, the confusion
matrices as PNGs with counts, the most confident mistakes as a contact sheet, and a JSON report.

It is the pass training's validation and promotion run (`training.engine.evaluate`, through `score`), so a
report's weighted figures are the ones training logged and promotion compared, not a recomputation; the
per-class rows come from the same pass's confusion matrices.
"""

from __future__ import annotations

import heapq
import json
import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from handgesture.checkpoints.start import StartPoint, open_start, resolve_start
from handgesture.config import Config, load_config
from handgesture.data.loaders import Batches, build_test_batches, build_val_batches
from handgesture.data.people import read_meta
from handgesture.data.prepare import PreparedData, prepare_data
from handgesture.errors import ConfigError, InputError
from handgesture.fairness import PredictionRecorder, fairness_section
from handgesture.figures import contact_sheet, save_confusion
from handgesture.inference import LoadedModel, load_model, model_of
from handgesture.labels import LEADING_HANDS
from handgesture.metrics import HEADS
from handgesture.storage import s3_settings
from handgesture.training.engine import Observer, Trainer, evaluate
from handgesture.training.setup import pick_device

log = logging.getLogger(__name__)
SPLITS = ("test", "val")
CONFUSION_KEYS = {"gesture": "confusion_matrix", "leading_hand": "leading_hand_confusion_matrix"}


class ModelDoesNotFitError(InputError):
    """A model is evaluated on data of other classes or another image size."""


def check_fits(loaded: LoadedModel, config: Config) -> None:
    """A model can only be scored on data of its own classes and image size."""
    for what, theirs, ours in (
        ("classes", loaded.class_names, list(config.dataset.targets)),
        ("image size", loaded.image_size, list(config.dataset.image_size)),
    ):
        if list(theirs) != ours:
            raise ModelDoesNotFitError(
                f"{loaded.uri} was trained for {what} {theirs}, but the data is configured with {ours} "
                "(dataset.targets, dataset.image_size)"
            )


def score(
    model: torch.nn.Module,
    config: Config,
    device: torch.device,
    batches: Batches,
    observe: Observer | None = None,
) -> dict[str, Any]:
    """`model`'s metrics on `batches`, computed as training computes its validation metrics."""
    trainer = Trainer(model, None, None, None, device, len(config.dataset.targets))  # type: ignore[arg-type]
    trainer.metric_average = config.metric_params.average
    trainer.metric_names = tuple(config.metric_params.metrics)
    return evaluate(trainer, batches(), observe)


def per_class(matrix: list[list[int]], names: list[str] | tuple[str, ...]) -> list[dict[str, Any]]:
    """Precision, recall, F1 and support per class, from a confusion matrix (rows true, columns predicted)."""
    rows = []
    for i, name in enumerate(names):
        hits, support = matrix[i][i], sum(matrix[i])
        predicted = sum(row[i] for row in matrix)
        precision = hits / predicted if predicted else 0.0
        recall = hits / support if support else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        rows.append(
            {"class": name, "precision": precision, "recall": recall, "f1_score": f1, "support": support}
        )
    return rows


@dataclass(order=True)
class Mistake:
    probability: float  # the model's probability of its wrong answer: the most confident mistakes first
    index: int  # the sample's position in the split
    true: str = field(compare=False)
    predicted: str = field(compare=False)
    image: torch.Tensor = field(compare=False, repr=False)  # the uint8 [3, H, W] crop the model saw


class MistakeCollector:
    """Keeps the `limit` most confident gesture mistakes of an evaluation pass (an `Observer`)."""

    def __init__(self, class_names: list[str], limit: int):
        self.class_names, self.limit = class_names, limit
        self.heap: list[Mistake] = []

    def __call__(self, batch: dict, outputs: dict[str, torch.Tensor]) -> None:
        probabilities = outputs["gesture"].softmax(dim=1).cpu()
        confidence, predicted = probabilities.max(dim=1)
        for row in torch.nonzero(predicted != batch["gesture"]).flatten().tolist():
            mistake = Mistake(
                float(confidence[row]),
                int(batch["index"][row]),
                self.class_names[int(batch["gesture"][row])],
                self.class_names[int(predicted[row])],
                batch["image"][row].clone(),
            )
            if len(self.heap) < self.limit:
                heapq.heappush(self.heap, mistake)
            elif self.limit:
                heapq.heappushpop(self.heap, mistake)

    def mistakes(self) -> list[Mistake]:
        return sorted(self.heap, reverse=True)


@dataclass
class EvaluationReport:
    checkpoint: str
    sha256: str
    model_name: str
    epoch: int
    split: str
    samples: int  # evaluated (readable) hands
    skipped_images: int
    weighted: dict[str, dict[str, float]]  # head -> metric -> value, as training reports them
    per_class: dict[str, list[dict[str, Any]]]  # head -> one row per class
    confusion: dict[str, list[list[int]]]  # head -> counts (rows: true, columns: predicted)
    mistakes: list[dict[str, Any]]  # the most confident gesture mistakes, most confident first
    files: dict[str, str] = field(default_factory=dict)  # report, confusion matrices, contact sheet
    notes: list[str] = field(default_factory=list)
    # Gesture F1 per gender, race and age band (`fairness`); None where the annotations carry no `meta`.
    fairness: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        report = asdict(self)
        if report["fairness"] is None:  # no section at all, rather than an empty one that reads as "fair"
            del report["fairness"]
        return report


def evaluation_plan(uri: str, config_path: str | None, overrides: list[str]) -> tuple[Config, StartPoint]:
    """The checkpoint `uri` names, resolved once into a start point, and the config to evaluate it with: a
    given file, else the one the checkpoint was trained with (its model and data, never its storage, caches
    or endpoints: `checkpoint_config.CHECKPOINT_KEYS`); overrides apply on top either way (`storage.*` ones
    also say how to reach the checkpoint)."""
    own = load_config(config_path, overrides)
    start, _ = resolve_start(uri, "evaluate", s3_settings(own.storage))
    if config_path:
        return own, start
    return load_config(None, overrides, base=(f"the config of checkpoint {start.uri}", start.config)), start


def evaluate_checkpoint(
    checkpoint: str | StartPoint,
    config: Config,
    out_dir: Path | None = None,
    *,
    split: str | None = None,
    mistakes: int = 32,
    prepared: PreparedData | None = None,
) -> EvaluationReport:
    """Evaluate `checkpoint` (a start point from `evaluation_plan`, or any URI `load_model` takes) on
    `split` (test by default, else validation) of `config`'s data, and
    write the report, the confusion matrices and the contact sheet into `out_dir` (default
    `evaluations/<model>-e<epoch>-<sha256 prefix>-<split>`)."""
    s3 = s3_settings(config.storage)
    device = pick_device(config.device)
    if isinstance(checkpoint, StartPoint):
        loaded = model_of(open_start(checkpoint, s3), device)
    else:
        loaded = load_model(checkpoint, device, s3)
    check_fits(loaded, config)
    prepared = prepared or prepare_data(config)
    split, batches, notes = _split(config, device, prepared, split)
    collector, recorder = MistakeCollector(loaded.class_names, mistakes), PredictionRecorder()
    metrics = score(loaded.model, config, device, batches, _each(collector, recorder))
    samples = batches().dataset.samples  # both crop datasets keep theirs: a mistake names its hand
    report = _report(loaded, split, metrics, collector.mistakes(), notes)
    meta = read_meta(_annotations_of(prepared, split), (s.image for s in samples))
    report.fairness = fairness_section(
        meta, samples, recorder, len(loaded.class_names), config.metric_params.average
    )
    for row, mistake in zip(report.mistakes, collector.mistakes(), strict=True):
        row["image"], row["box"] = samples[mistake.index].image, list(samples[mistake.index].box)
    out_dir = (
        out_dir or Path("evaluations") / f"{loaded.model_name}-e{loaded.epoch}-{loaded.sha256[:8]}-{split}"
    )
    _write(report, collector.mistakes(), loaded.class_names, out_dir)
    return report


def _each(*observers: Observer) -> Observer:
    """One observer that hands each batch to all of `observers`."""

    def observe(batch: dict, outputs: dict[str, torch.Tensor]) -> None:
        for observer in observers:
            observer(batch, outputs)

    return observe


def _annotations_of(prepared: PreparedData, split: str) -> str:
    """The annotations folder `split` was read from: its own, else (the person split) the training one."""
    return (prepared.splits.get(split) or prepared.splits["train"]).annotations


def _split(
    config: Config, device: torch.device, prepared: PreparedData, split: str | None
) -> tuple[str, Batches, list[str]]:
    if split not in (None, *SPLITS):
        raise ConfigError(f"split {split!r} is not one of {list(SPLITS)}")
    test = build_test_batches(config, device, prepared)
    if split == "test" and test is None:
        raise ConfigError(
            "split 'test' needs a test split: set dataset.test_annotations to a HaGRID annotations folder, "
            "or evaluate on split 'val'"
        )
    if split in (None, "test") and test is not None:
        return "test", test, []
    notes = (
        [] if split == "val" else ["no test split (dataset.test_annotations is null): the validation split"]
    )
    return "val", build_val_batches(config, device, prepared), notes


def _report(
    loaded: LoadedModel, split: str, metrics: dict[str, Any], mistakes: list[Mistake], notes: list[str]
) -> EvaluationReport:
    names = {"gesture": loaded.class_names, "leading_hand": list(LEADING_HANDS)}
    heads = [head for head in HEADS if CONFUSION_KEYS[head] in metrics]  # a full-frame model: gesture only
    confusion = {head: metrics[CONFUSION_KEYS[head]] for head in heads}
    return EvaluationReport(
        checkpoint=loaded.uri,
        sha256=loaded.sha256,
        model_name=loaded.model_name,
        epoch=loaded.epoch,
        split=split,
        samples=sum(map(sum, confusion["gesture"])),
        skipped_images=int(metrics["skipped_images"]),
        weighted={
            head: {k.split("/", 1)[1]: float(v) for k, v in metrics.items() if k.startswith(f"{head}/")}
            for head in heads
        },
        per_class={head: per_class(confusion[head], names[head]) for head in heads},
        confusion=confusion,
        mistakes=[
            {"index": m.index, "true": m.true, "predicted": m.predicted, "probability": m.probability}
            for m in mistakes
        ],
        notes=notes,
    )


def _write(report: EvaluationReport, mistakes: list[Mistake], class_names: list[str], out_dir: Path) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    names = {"gesture": class_names, "leading_hand": list(LEADING_HANDS)}
    for head in report.confusion:
        path = out_dir / f"{CONFUSION_KEYS[head]}.png"
        save_confusion(report.confusion[head], names[head], path)
        report.files[f"{head}_confusion_matrix"] = str(path)
    if mistakes:
        report.files["mistakes"] = str(contact_sheet(mistakes, out_dir / "mistakes.png"))
    report.files["report"] = str(out_dir / "report.json")
    (out_dir / "report.json").write_text(json.dumps(report.to_dict(), indent=2) + "\n")
    log.info("evaluation of %s on the %s split written to %s", report.checkpoint, report.split, out_dir)
