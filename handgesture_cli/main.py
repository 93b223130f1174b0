"""The parser of every `handgesture` subcommand, and the one place that turns an error into an exit status."""

from __future__ import annotations

import flows.settings  # this project's Prefect settings: before prefect is imported

# isort: split

import argparse
import sys

from handgesture.errors import ExportError, InputError, StorageError, report_error
from handgesture_cli import commands, flow_commands

DESCRIPTION = (
    "Make synthetic data, prepare crop caches, train (the Prefect flow), evaluate, predict with and export "
    "a model, inspect a checkpoint."
)
CHECKPOINT_HELP = "a checkpoint or run folder: path, file://, s3://, <storage>/<experiment>/best or prefect://flow-runs/<id>"
RESUME_HELP = (
    "Where to continue from: a checkpoint (local path, file://..., s3://bucket/.../x.pth); a run folder or "
    "s3:// run prefix (its newest committed checkpoint); prefect://flow-runs/<id> (that flow run's last "
    "checkpoint; add /best for its best); <storage>/<experiment>/best (the experiment's current best model, "
    "as promoted by the scheduled retrain). Empty: start fresh."
)


def main(argv: list[str] | None = None) -> int:
    args = parse(sys.argv[1:] if argv is None else argv)
    try:
        return args.handler(args)
    except (InputError, StorageError, ExportError) as exc:
        return report_error(exc)
    except RuntimeError as exc:
        failure = flows.settings.server_start_failure(exc)
        if failure is None:
            raise
        print(f"error: {failure}", file=sys.stderr)
        return 1


def parse(argv: list[str]) -> argparse.Namespace:
    """The subcommand's arguments; `key=value` overrides may come before, between or after its options."""
    parser, subcommands = _parser()
    if argv[:1] and argv[0] in subcommands:
        return subcommands[argv[0]].parse_intermixed_args(argv[1:])
    return parser.parse_args(argv)  # no subcommand, an unknown one or --help: argparse says so and exits


def _parser() -> tuple[argparse.ArgumentParser, dict[str, argparse.ArgumentParser]]:
    parser = argparse.ArgumentParser(prog="handgesture", description=DESCRIPTION)
    sub = parser.add_subparsers(required=True, metavar="COMMAND")
    synth = sub.add_parser("synth", help="write a synthetic dataset in HaGRID's format")
    synth.add_argument("out_dir")
    synth.add_argument("--per-class", type=int, default=40, help="images per gesture (default 40; v2: train)")
    synth.add_argument("--users", type=int, default=10, help="user_ids (default 10; v2: per split)")
    synth.add_argument("--frame", type=int, nargs=2, default=[320, 240], metavar=("W", "H"))
    synth.add_argument("--test-per-class", type=int, default=0, help="a test split (v2: its size)")
    synth.add_argument("--seed", type=int, default=0)
    synth.add_argument(
        "--hagrid-version", type=int, choices=(1, 2), default=1,
        help="annotation format: 1 (the classifier's, 18 gestures with leading hands) or 2 (33 gestures and "
        "no_gesture, as v2 ships: hagrid_annotations/{train,val,test}, hagrid_dataset)",
    )  # fmt: skip
    synth.set_defaults(handler=commands.synth)
    prepare = sub.add_parser("prepare", help="build (or fetch) the crop caches training reads")
    prepare.add_argument("--config", help="config YAML merged over configs/default.yaml")
    _overrides(prepare)
    prepare.set_defaults(handler=commands.prepare)
    _train(sub)
    _model_commands(sub)
    _promote(sub)
    inspect = sub.add_parser("inspect", help="print what a checkpoint or run holds")
    inspect.add_argument("uri", help=CHECKPOINT_HELP)
    _storage_options(inspect)
    inspect.set_defaults(handler=commands.inspect)
    return parser, sub.choices


def _train(sub) -> None:
    train = sub.add_parser(
        "train",
        help="run the training flow (also `python flows/train.py ...`)",
        description="The train-hand-gesture-classifier flow: load-config, prepare-data, train, persist.",
    )
    train.add_argument("--config", help="config YAML merged over configs/default.yaml")
    train.add_argument("--model", help="architecture, e.g. ResNet18 (model.name)")
    train.add_argument("--epochs", type=int, help="total epochs to reach (train_params.epochs)")
    train.add_argument("--resume", help=RESUME_HELP)
    train.add_argument("--storage", help="local folder, file://... or s3://bucket/prefix (storage.uri)")
    _overrides(train)
    train.set_defaults(handler=flow_commands.train)


def _promote(sub) -> None:
    promote = sub.add_parser(
        "promote",
        help="make a run's checkpoint its experiment's best (the retrain's starting point), if it beats it",
        description="Offer a checkpoint of a run folder to its experiment's best pointer "
        "(<storage>/<experiment>/best.json), through the same gate as the scheduled retrain: both are "
        "evaluated on the checkpoint's validation split, and the pointer moves only if the checkpoint scores "
        "higher (or there is no best yet).",
    )
    promote.add_argument("uri", help="a checkpoint inside a run folder: <storage>/<experiment>/<run>/...pth")
    promote.add_argument("--config", help="config YAML of the data (default: the checkpoint's own config)")
    promote.add_argument(
        "--min-improvement", type=float, default=0.0, help="promote only if it wins by more (default 0)"
    )
    _overrides(promote)
    promote.set_defaults(handler=commands.promote)


def _model_commands(sub) -> None:
    evaluate = sub.add_parser("evaluate", help="metrics, confusion matrices and mistakes on a split")
    evaluate.add_argument("uri", help=CHECKPOINT_HELP)
    evaluate.add_argument("--config", help="config YAML of the data (default: the checkpoint's own config)")
    evaluate.add_argument("--split", choices=("test", "val"), help="default: test, else the validation split")
    evaluate.add_argument("--out", help="folder for report.json and the PNGs (default: evaluations/...)")
    evaluate.add_argument("--mistakes", type=int, help="examples on the contact sheet (32)")
    evaluate.add_argument(
        "--flow",
        action="store_true",
        help="run it as the evaluate flow (also `python flows/evaluate.py ...`): the report and the "
        "per-class table become artifacts of a Prefect flow run",
    )
    _overrides(evaluate)
    evaluate.set_defaults(handler=commands.evaluate)
    predict = sub.add_parser("predict", help="gesture and leading hand of each hand box, as JSON lines")
    predict.add_argument("uri", help=CHECKPOINT_HELP)
    predict.add_argument("images", nargs="+", metavar="IMAGE", help="image files or folders of images")
    predict.add_argument(
        "--boxes",
        help="hand boxes: HaGRID's annotations folder or a <gesture>.json of it, or a JSON list "
        "(default: none, each image whole, which only a full-frame model is trained on)",
    )
    predict.add_argument("--top-k", type=int, default=1, help="gestures listed per hand (default 1)")
    predict.add_argument("--batch-size", type=int, default=32)
    predict.add_argument("--device", default="auto", help="auto (GPU when present), cpu, cuda, mps")
    _storage_options(predict)
    predict.set_defaults(handler=commands.predict)
    export = sub.add_parser("export", help="TorchScript, ONNX or slim weights of a checkpoint")
    export.add_argument("uri", help=CHECKPOINT_HELP)
    export.add_argument("--format", required=True, choices=("torchscript", "onnx", "weights"))
    export.add_argument(
        "--out", help="the file to write (default: model.torchscript.pt, model.onnx or model_weights.pth)"
    )
    export.add_argument(
        "--force",
        action="store_true",
        help="replace an earlier export of ours at --out (never a run's files or any other file)",
    )
    _storage_options(export)
    export.set_defaults(handler=commands.export)


def _overrides(command: argparse.ArgumentParser) -> None:
    command.add_argument("overrides", nargs="*", metavar="key=value", help="dotlist config overrides")


def _storage_options(command: argparse.ArgumentParser) -> None:
    command.add_argument("--block", help="saved Prefect block with the S3 credentials (storage.block)")
    command.add_argument("--endpoint-url", help="S3-compatible endpoint (storage.endpoint_url)")
