"""Human-facing summaries of a finished run: the markdown report, the metrics table, resume commands."""

from __future__ import annotations

import shlex
from typing import Any

from handgesture.training.summary import RunSummary

TABLE_COLUMNS = ("epoch", "train/loss", "gesture/f1_score", "gesture/accuracy", "leading_hand/f1_score")


def resume_command(result: RunSummary, checkpoint_uri: str, config_path: str | None = None) -> str:
    # The config goes along (image size and classes must match the checkpoint's), and so do the settings
    # that reach the storage (endpoint, block name).
    config = f"--config {shlex.quote(config_path)} " if config_path else ""
    extra = "".join(f" {shlex.quote(o)}" for o in result.storage_overrides)
    epochs = result.epochs + 5
    return f"python flows/train.py {config}--resume {shlex.quote(checkpoint_uri)} --epochs {epochs}{extra}"


def tensorboard_command(run_uri: str) -> str:
    experiment_dir = run_uri.rsplit("/", 1)[0]
    return f"tensorboard --logdir {shlex.quote(experiment_dir)}"


def metrics_table(result: RunSummary) -> list[dict[str, Any]]:
    return [{column: _fmt(row.get(column)) for column in TABLE_COLUMNS} for row in result.history]


def render_report(result: RunSummary, model_name: str, config_path: str | None = None) -> str:
    best = result.best_or_last
    lines = [
        f"# {model_name} run `{result.run_uri.rsplit('/', 1)[-1]}`",
        "",
        f"- run folder: `{result.run_uri}`",
        f"- best validation gesture F1: **{result.best_metric:.4f}** (epoch {result.best_epoch})",
        f"- best checkpoint: `{result.best_checkpoint}`",
        f"- last checkpoint: `{result.last_checkpoint}`",
        f"- resumed from: `{result.resumed_from}`" if result.resumed_from else "- started fresh",
        *_reinitialised(result),
        f"- images skipped: {result.missing_images} missing, {result.skipped_images} unreadable",
        "",
        "## Metrics per epoch",
        "",
        "| " + " | ".join(TABLE_COLUMNS) + " |",
        "|" + "---|" * len(TABLE_COLUMNS),
        *("| " + " | ".join(str(v) for v in row.values()) + " |" for row in metrics_table(result)),
        "",
        "## Continue training",
        "",
        f"```\n{resume_command(result, best, config_path)}\n```" if best else "No checkpoint was committed.",
        "",
        f"TensorBoard: `{tensorboard_command(result.run_uri)}`",
    ]
    return "\n".join(lines)


def _reinitialised(result: RunSummary) -> list[str]:
    """A fine-tune's tensors that did not fit and were re-initialised."""
    if not result.finetune_skipped:
        return []
    return [f"- re-initialised: {', '.join(f'`{name}`' for name in result.finetune_skipped)}"]


def _fmt(value: Any) -> Any:
    return round(value, 4) if isinstance(value, float) else value


def print_summary(result: RunSummary, config_path: str | None = None) -> None:
    """What a user needs after a run: the score, where the model is, how to go on, how to look."""
    best = result.best_or_last
    f1 = result.metrics.get("gesture/f1_score", result.best_metric)
    print(f"\nvalidation gesture F1: {f1:.4f} (best {result.best_metric:.4f})")
    print(f"best checkpoint:       {best}")
    if best:
        print(f"resume from it:        {resume_command(result, best, config_path)}")
    print(f"open TensorBoard:      {tensorboard_command(result.run_uri)}")
