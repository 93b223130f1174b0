"""Human-facing summaries of a finished run: the markdown report, the metrics table, resume commands."""

from __future__ import annotations

import json
import shlex
from typing import Any

from handgesture.evaluation import EvaluationReport
from handgesture.fairness import fairness_markdown
from handgesture.metrics import HEADS, METRIC_NAMES
from handgesture.promotion import PromotionDecision
from handgesture.report_layout import WIDTH, path_link, short_link, wrapped
from handgesture.training.summary import RunSummary

TABLE_COLUMNS = ("epoch", "train/loss", "gesture/f1_score", "gesture/accuracy", "leading_hand/f1_score")


def resume_command(result: RunSummary, checkpoint_uri: str) -> str:
    """Five more epochs from `checkpoint_uri`. The checkpoint holds the run's recipe; the settings that reach
    its storage (endpoint, block name) and say where runs go (storage and experiment, so the new run lands
    beside this one) go along, since a checkpoint's own config never decides them."""
    extra = "".join(f" {shlex.quote(o)}" for o in result.storage_overrides + result.location_overrides)
    return f"python flows/train.py --resume {shlex.quote(checkpoint_uri)} --epochs {result.epochs + 5}{extra}"


def evaluate_command(result: RunSummary, checkpoint_uri: str) -> str:
    """Its metrics on the held-out split: the checkpoint names its data; storage settings go along."""
    extra = "".join(f" {shlex.quote(o)}" for o in result.storage_overrides)
    return f"handgesture evaluate {shlex.quote(checkpoint_uri)}{extra}"


def export_command(result: RunSummary, weights_uri: str) -> str:
    """An ONNX model of the best weights, with its preprocessing inside."""
    flags = {"storage.endpoint_url": "--endpoint-url", "storage.block": "--block"}
    extra = "".join(
        f" {flags[key]} {shlex.quote(value)}"
        for key, value in (o.split("=", 1) for o in result.storage_overrides)
        if key in flags
    )
    return f"handgesture export {shlex.quote(weights_uri)} --format onnx{extra}"


def tensorboard_command(result: RunSummary) -> str:
    """TensorBoard over the run's experiment, every run side by side. It reads s3:// itself (boto3's default
    credentials); an S3-compatible endpoint goes in S3_ENDPOINT."""
    experiment_dir = result.run_uri.rsplit("/", 1)[0]
    endpoints = [
        o.split("=", 1)[1] for o in result.storage_overrides if o.startswith("storage.endpoint_url=")
    ]
    prefix = f"S3_ENDPOINT={shlex.quote(endpoints[0])} " if endpoints and "://" in experiment_dir else ""
    return f"{prefix}tensorboard --logdir {shlex.quote(experiment_dir)}"


def table_columns(result: RunSummary) -> list[str]:
    """TABLE_COLUMNS that some epoch has: a one-head (full-frame) model, or data without leading hands, gets
    no column of blanks for the leading hand."""
    return [c for c in TABLE_COLUMNS if not result.history or any(c in row for row in result.history)]


def metrics_table(result: RunSummary) -> list[dict[str, Any]]:
    columns = table_columns(result)
    return [{column: _fmt(row.get(column)) for column in columns} for row in result.history]


def checkpoints_table(result: RunSummary) -> list[dict[str, str]]:
    """The run's folder and its last and best checkpoints, one row each: their URIs as data."""
    rows = (("run", result.run_uri), ("last", result.last_checkpoint), ("best", result.best_checkpoint))
    return [{"kind": kind, "uri": uri} for kind, uri in rows if uri]


def deployment_resume_command(deployment: str, flow_run_id: str, result: RunSummary | None = None) -> str:
    """Where a deployment's run goes on: the same deployment, resuming this flow run (whatever machine the
    next worker is, it reaches the checkpoint through the run's record, not through a worker-local path).
    With `result`: five more epochs, and the settings that reach its storage and put the new run beside it
    (a checkpoint's own config never decides them), as `resume_command` gives them."""
    command = (
        f"prefect deployment run {shlex.quote(deployment)} --param resume=prefect://flow-runs/{flow_run_id}"
    )
    if result is None:
        return command
    overrides = [
        f"train_params.epochs={result.epochs + 5}",
        *result.storage_overrides,
        *result.location_overrides,
    ]
    return f"{command} --param {shlex.quote('overrides=' + json.dumps(overrides))}"


def wrapped_deployment_command(command: str) -> str:
    """`wrapped`, and the overrides' JSON list one item a line (JSON allows the line breaks, and the shell
    keeps them inside the quotes), so a long list fits the UI too."""
    text = wrapped(command)
    return text.replace('", "', '",\n      "') if len(command) > WIDTH else text


def render_report(
    result: RunSummary, model_name: str, deployment: str | None = None, flow_run_id: str | None = None
) -> str:
    """The run's markdown report. `deployment` (`<flow>/<deployment>`) and `flow_run_id`: a run started from
    a deployment is continued through it first."""
    best = result.best_or_last
    lines = [
        f"# {model_name} run `{result.run_uri.rsplit('/', 1)[-1]}`",
        "",
        f"- run folder: {path_link(result.run_uri)}",
        f"- best validation gesture F1: **{result.best_metric:.4f}** (epoch {result.best_epoch})",
        f"- best checkpoint: {path_link(result.best_checkpoint)}",
        f"- last checkpoint: {path_link(result.last_checkpoint)}",
        f"- resumed from: {path_link(result.resumed_from)}" if result.resumed_from else "- started fresh",
        *([f"- {result.stopped_early}"] if result.stopped_early else []),
        *_reinitialised(result),
        f"- images skipped: {result.missing_images} missing, {result.skipped_images} unreadable",
        *(f"- data: {note}" for note in result.data_notes),
        "",
        "## Metrics per epoch",
        "",
        "| " + " | ".join(table_columns(result)) + " |",
        "|" + "---|" * len(table_columns(result)),
        *("| " + " | ".join(str(v) for v in row.values()) + " |" for row in metrics_table(result)),
        "",
        *_test_section(result),
        "## Continue training",
        "",
        *_continue_section(result, best, deployment, flow_run_id),
        "",
        "TensorBoard:",
        "",
        f"```\n{wrapped(tensorboard_command(result))}\n```",
        *_use_section(result),
    ]
    return "\n".join(lines)


def _continue_section(
    result: RunSummary, best: str | None, deployment: str | None, flow_run_id: str | None
) -> list[str]:
    if not best:
        return ["No checkpoint was committed."]
    shell = f"```\n{wrapped(resume_command(result, best))}\n```"
    if not (deployment and flow_run_id):
        return [shell]
    again = deployment_resume_command(deployment, flow_run_id, result)
    return [
        f"```\n{wrapped_deployment_command(again)}\n```",
        "",
        "or from a shell that reaches the checkpoint:",
        "",
        shell,
    ]


def test_metrics(result: RunSummary) -> dict[str, float]:
    """The test split's metrics (of the final model), without their `test/` prefix; empty without a split."""
    return {k.removeprefix("test/"): v for k, v in result.metrics.items() if k.startswith("test/")}


def _use_section(result: RunSummary) -> list[str]:
    best = result.best_or_last
    if not best:
        return []
    lines = ["", "## Use the model", "", f"```\n{wrapped(evaluate_command(result, best))}"]
    if result.best_weights:
        lines.append(wrapped(export_command(result, result.best_weights)))
    return [*lines, "```"]


def _test_section(result: RunSummary) -> list[str]:
    test = test_metrics(result)
    if not test:
        return []
    heads = [head for head in ("gesture", "leading_hand") if f"{head}/f1_score" in test]
    rows = [
        f"| {name} | " + " | ".join(f"{test[f'{head}/{name}']:.4f}" for head in heads) + " |"
        for name in METRIC_NAMES
        if all(f"{head}/{name}" in test for head in heads)
    ]
    header = ["## Test split (the final model)", "", "| metric | " + " | ".join(heads) + " |"]
    return [*header, "|---|" + "---|" * len(heads), *rows, ""]


def _reinitialised(result: RunSummary) -> list[str]:
    """A fine-tune's tensors that did not fit and were re-initialised."""
    if not result.finetune_skipped:
        return []
    return [f"- re-initialised: {', '.join(f'`{name}`' for name in result.finetune_skipped)}"]


def _fmt(value: Any) -> Any:
    return round(value, 4) if isinstance(value, float) else value


def rounded(value: Any) -> Any:
    """`value` with every float in it (in dicts and lists too) at 4 digits: for what people read (printed
    summaries, artifact tables); files keep full precision."""
    if isinstance(value, dict):
        return {key: rounded(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [rounded(item) for item in value]
    return _fmt(value)


def print_summary(result: RunSummary) -> None:
    """What a user needs after a run: the score, where the model is, how to go on, how to look."""
    best = result.best_or_last
    f1 = result.metrics.get("gesture/f1_score", result.best_metric)
    print(f"\nvalidation gesture F1: {f1:.4f} (best {result.best_metric:.4f})")
    if result.stopped_early:
        print(f"early stopping:        {result.stopped_early}")
    if "gesture/f1_score" in test_metrics(result):
        print(f"test gesture F1:       {test_metrics(result)['gesture/f1_score']:.4f} (the final model)")
    for note in result.data_notes:
        print(f"data:                  {note}")
    print(f"best checkpoint:       {best}")
    if best:
        print(f"resume from it:        {resume_command(result, best)}")
        print(f"evaluate it:           {evaluate_command(result, best)}")
    if result.best_weights:
        print(f"export it:             {export_command(result, result.best_weights)}")
    print(f"open TensorBoard:      {tensorboard_command(result)}")


def promotion_report(decision: PromotionDecision) -> str:
    """The promotion decision as markdown: both models on the same validation split, and on the test split.
    Short headers and short checkpoint names (linking to the full URIs), so the table fits the UI."""

    def score(value: float | None) -> str:
        return "-" if value is None else f"{value:.4f}"

    has_test = decision.challenger_test_metric is not None
    rows = [
        ("challenger", decision.challenger, decision.challenger_metric, decision.challenger_test_metric),
        ("current best", decision.incumbent, decision.incumbent_metric, decision.incumbent_test_metric),
    ]
    table = ["| model | checkpoint | val F1 |" + (" test F1 |" if has_test else ""), "|---|---|---|"]
    table[1] += "---|" if has_test else ""
    table += [
        f"| {role} | {short_link(uri)} | {score(val)} |" + (f" {score(test)} |" if has_test else "")
        for role, uri, val, test in rows
    ]
    title = "Promoted" if decision.promoted else "Not promoted"
    legend = f"F1: `{decision.metric}`; val: the same validation split for both, measured now."
    return "\n".join(
        [
            f"## {title}",
            "",
            decision.reason,
            "",
            *table,
            "",
            legend,
            "",
            f"pointer: {path_link(decision.pointer)}",
            "",
        ]
    )


def render_evaluation(report: EvaluationReport) -> str:
    """An evaluation as markdown: weighted scores of both heads, the gesture head class by class, then by
    group of people where the annotations carry `meta`."""
    names = [name for name in METRIC_NAMES if name in report.weighted["gesture"]]
    lines = [
        f"# {report.model_name} (epoch {report.epoch}) on the {report.split} split",
        "",
        f"checkpoint {path_link(report.checkpoint)} (sha256 {report.sha256[:12]}), {report.samples} hands",
        *[f"- {note}" for note in report.notes],
        "",
        "| head | " + " | ".join(names) + " |",
        "| --- |" + " --- |" * len(names),
        *[
            f"| {head} | "
            + " | ".join(f"{report.weighted[head].get(n, float('nan')):.4f}" for n in names)
            + " |"
            for head in HEADS
            if head in report.weighted  # a full-frame model has the gesture head alone
        ],
        "",
        "| gesture | precision | recall | f1_score | support |",
        "| --- | --- | --- | --- | --- |",
        *[_class_row(row) for row in report.per_class["gesture"]],
        "",
        *fairness_markdown(report.fairness),
        *[f"- {what}: {path_link(where)}" for what, where in report.files.items()],
        "",
    ]
    return "\n".join(lines)


def _class_row(row: dict[str, Any]) -> str:
    scores = " | ".join(f"{row[name]:.4f}" for name in ("precision", "recall", "f1_score"))
    return f"| {row['class']} | {scores} | {row['support']} |"
