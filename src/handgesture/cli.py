"""The `handgesture` command: make synthetic data, prepare crop caches, train (the Prefect flow), evaluate,
predict with and export a model, and inspect a checkpoint."""

from __future__ import annotations

import argparse
import json
import sys
from importlib.metadata import entry_points

from handgesture.errors import ExportError, InputError, StorageError

# Commands that run Prefect flows live with the flows, above this library, and register themselves here as
# entry points (pyproject.toml), so the library never imports them: `handgesture train` is flows.train:main.
COMMAND_PLUGINS = "handgesture.commands"
CHECKPOINT_HELP = "a checkpoint or run folder: path, file://, s3://, <storage>/<experiment>/best or prefect://flow-runs/<id>"


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    plugins = {command.name: command for command in entry_points(group=COMMAND_PLUGINS)}
    if argv[:1] and argv[0] in plugins:
        plugins[argv[0]].load()(argv[1:])  # it parses its own arguments and reports its own errors
        return 0
    args = _parse(_parser(sorted(plugins)), argv)
    try:
        return args.handler(args)
    except (InputError, StorageError, ExportError) as exc:
        return report_error(exc)


def _parse(parser: argparse.ArgumentParser, argv: list[str]) -> argparse.Namespace:
    """Parse, letting `key=value` overrides follow options too (`evaluate URI --split val key=value`)."""
    args, extra = parser.parse_known_args(argv)
    misplaced = [arg for arg in extra if "=" in arg and not arg.startswith("-")]
    if misplaced and hasattr(args, "overrides"):
        args.overrides += misplaced
        extra = [arg for arg in extra if arg not in misplaced]
    if extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    return args


def report_error(error: Exception) -> int:
    """One line instead of a traceback; exit status 2 for bad input, 1 for a failure that may pass."""
    print(f"error: {error}", file=sys.stderr)
    return 2 if isinstance(error, InputError) else 1


def _parser(plugins: list[str]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="handgesture", description=__doc__)
    names = ["synth", "prepare", *plugins, "evaluate", "predict", "export", "inspect"]
    commands = parser.add_subparsers(required=True, metavar="{" + ",".join(names) + "}")
    synth = commands.add_parser("synth", help="write a synthetic dataset in HaGRID's format")
    synth.add_argument("out_dir")
    synth.add_argument("--per-class", type=int, default=40, help="images per gesture (default 40)")
    synth.add_argument("--users", type=int, default=10, help="distinct user_ids (default 10)")
    synth.add_argument("--frame", type=int, nargs=2, default=[320, 240], metavar=("W", "H"))
    synth.add_argument("--test-per-class", type=int, default=0, help="also write a test split")
    synth.add_argument("--seed", type=int, default=0)
    synth.add_argument(
        "--hagrid-version", type=int, choices=(1, 2), default=1,
        help="annotation format: 1 (the classifier's, 18 gestures with leading hands) or 2 (33 gestures)",
    )  # fmt: skip
    synth.set_defaults(handler=_synth)
    prepare = commands.add_parser("prepare", help="build (or fetch) the crop caches training reads")
    prepare.add_argument("--config", help="config YAML merged over configs/default.yaml")
    prepare.add_argument("overrides", nargs="*", metavar="key=value", help="dotlist config overrides")
    prepare.set_defaults(handler=_prepare)
    for name in plugins:
        commands.add_parser(name, help=f"run the {name} flow (see `handgesture {name} --help`)")
    _model_commands(commands)
    inspect = commands.add_parser("inspect", help="print what a checkpoint or run holds")
    inspect.add_argument("uri", help=CHECKPOINT_HELP)
    _storage_options(inspect)
    inspect.set_defaults(handler=_inspect)
    return parser


def _model_commands(commands) -> None:
    evaluate = commands.add_parser("evaluate", help="metrics, confusion matrices and mistakes on a split")
    evaluate.add_argument("uri", help=CHECKPOINT_HELP)
    evaluate.add_argument("--config", help="config YAML of the data (default: the checkpoint's own config)")
    evaluate.add_argument("--split", choices=("test", "val"), help="default: test, else the validation split")
    evaluate.add_argument("--out", help="folder for report.json and the PNGs (default: evaluations/...)")
    evaluate.add_argument("--mistakes", type=int, default=32, help="examples on the contact sheet (32)")
    evaluate.add_argument("overrides", nargs="*", metavar="key=value", help="dotlist config overrides")
    evaluate.set_defaults(handler=_evaluate)
    predict = commands.add_parser("predict", help="gesture and leading hand of each hand box, as JSON lines")
    predict.add_argument("uri", help=CHECKPOINT_HELP)
    predict.add_argument("images", nargs="+", metavar="IMAGE", help="image files or folders of images")
    predict.add_argument(
        "--boxes", help="hand boxes: HaGRID annotations JSON, or a JSON list (default: whole)"
    )
    predict.add_argument("--top-k", type=int, default=1, help="gestures listed per hand (default 1)")
    predict.add_argument("--batch-size", type=int, default=32)
    predict.add_argument("--device", default="auto", help="auto (GPU when present), cpu, cuda, mps")
    _storage_options(predict)
    predict.set_defaults(handler=_predict)
    export = commands.add_parser("export", help="TorchScript, ONNX or slim weights of a checkpoint")
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
    export.set_defaults(handler=_export)


def _storage_options(command: argparse.ArgumentParser) -> None:
    command.add_argument("--block", help="saved Prefect block with the S3 credentials (storage.block)")
    command.add_argument("--endpoint-url", help="S3-compatible endpoint (storage.endpoint_url)")


def _s3(args: argparse.Namespace):
    from handgesture.storage import S3Settings

    return S3Settings(block=args.block, endpoint_url=args.endpoint_url)


def _positive(name: str, value: int) -> None:
    from handgesture.errors import ConfigError

    if value < 1:
        raise ConfigError(f"{name} must be a positive integer, got {value}")


def _evaluate(args: argparse.Namespace) -> int:
    from pathlib import Path

    from handgesture.evaluation import evaluate_checkpoint, evaluation_config

    _log_info_to_stderr()
    _positive("--mistakes", args.mistakes + 1)  # 0 is allowed: no contact sheet
    config = evaluation_config(args.uri, args.config, args.overrides)
    out = Path(args.out) if args.out else None
    report = evaluate_checkpoint(args.uri, config, out, split=args.split, mistakes=args.mistakes)
    keys = ("checkpoint", "split", "samples", "weighted", "files", "notes")
    print(json.dumps({key: report.to_dict()[key] for key in keys}, indent=2))
    return 0


def _predict(args: argparse.Namespace) -> int:
    from pathlib import Path

    from handgesture.inference import load_model
    from handgesture.prediction import image_paths, predict, read_boxes, targets_of
    from handgesture.training.setup import pick_device

    _positive("--top-k", args.top_k)
    _positive("--batch-size", args.batch_size)
    targets = targets_of(image_paths(args.images), read_boxes(Path(args.boxes)) if args.boxes else None)
    device = pick_device(args.device)
    loaded = load_model(args.uri, device, _s3(args))
    for record in predict(loaded, targets, device=device, batch_size=args.batch_size, top_k=args.top_k):
        print(json.dumps(record), flush=True)
    return 0


def _export(args: argparse.Namespace) -> int:
    from pathlib import Path

    from handgesture.checkpoints.locate import resolve_checkpoint
    from handgesture.export import DEFAULT_OUT, export_model
    from handgesture.export_target import check_target
    from handgesture.inference import model_of

    out = Path(args.out or DEFAULT_OUT[args.format])
    check_target(out, args.format, args.force)  # before the checkpoint is fetched; export_model checks again
    resolved = resolve_checkpoint(args.uri, _s3(args))
    result = export_model(model_of(resolved), resolved.checkpoint, args.format, out, force=args.force)
    print(json.dumps(result.to_dict(), indent=2, default=str))
    return 0


def _log_info_to_stderr() -> None:
    import logging

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")


def _synth(args: argparse.Namespace) -> int:
    from handgesture.data.synthetic import generate_synthetic
    from handgesture.labels import HAGRID_TARGETS, HAGRID_V2_TARGETS

    written = generate_synthetic(
        args.out_dir,
        per_class=args.per_class,
        targets=HAGRID_V2_TARGETS if args.hagrid_version == 2 else HAGRID_TARGETS,
        users=args.users,
        frame_size=tuple(args.frame),
        seed=args.seed,
        test_per_class=args.test_per_class,
        version=args.hagrid_version,
    )
    print(json.dumps(written, indent=2, default=str))
    return 0


def _prepare(args: argparse.Namespace) -> int:
    from handgesture.config import load_config
    from handgesture.data.prepare import prepare_data

    _log_info_to_stderr()
    print(json.dumps(prepare_data(load_config(args.config, args.overrides)).to_dict(), indent=2))
    return 0


def _inspect(args: argparse.Namespace) -> int:
    from handgesture.checkpoints.locate import resolve_checkpoint

    resolved = resolve_checkpoint(args.uri, _s3(args))
    checkpoint = resolved.checkpoint
    keys = (
        "schema_version",
        "origin",
        "model_name",
        "class_names",
        "image_size",
        "epoch",
        "progress",
        "metrics",
        "lineage",
    )
    info = {"uri": resolved.uri, **{k: checkpoint.get(k) for k in keys}}
    info["progress"] = {k: v for k, v in (info["progress"] or {}).items() if k != "history"}
    print(json.dumps(info, indent=2, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
