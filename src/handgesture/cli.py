"""The `handgesture` command: make synthetic data, prepare crop caches, train (the Prefect flow), inspect a
checkpoint."""

from __future__ import annotations

import argparse
import json
import sys
from importlib.metadata import entry_points

from handgesture.errors import InputError, StorageError

# Commands that run Prefect flows live with the flows, above this library, and register themselves here as
# entry points (pyproject.toml), so the library never imports them: `handgesture train` is flows.train:main.
COMMAND_PLUGINS = "handgesture.commands"


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    plugins = {command.name: command for command in entry_points(group=COMMAND_PLUGINS)}
    if argv[:1] and argv[0] in plugins:
        plugins[argv[0]].load()(argv[1:])  # it parses its own arguments and reports its own errors
        return 0
    args = _parser(sorted(plugins)).parse_args(argv)
    try:
        return args.handler(args)
    except (InputError, StorageError) as exc:
        return report_error(exc)


def report_error(error: Exception) -> int:
    """One line instead of a traceback; exit status 2 for bad input, 1 for a failure that may pass."""
    print(f"error: {error}", file=sys.stderr)
    return 2 if isinstance(error, InputError) else 1


def _parser(plugins: list[str]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="handgesture", description=__doc__)
    names = ["synth", "prepare", *plugins, "inspect", "convert"]
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
    inspect = commands.add_parser("inspect", help="print what a checkpoint or run holds")
    inspect.add_argument("uri", help="checkpoint file, run folder, file:// or s3:// URI")
    inspect.set_defaults(handler=_inspect)
    convert = commands.add_parser("convert", help="rewrite a schema-1 checkpoint into HaGRID's layout")
    convert.add_argument("source", help="a schema-1 .pth file")
    convert.add_argument("target", help="where to write the converted checkpoint")
    convert.set_defaults(handler=_convert)
    return parser


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
    import logging

    from handgesture.config import load_config
    from handgesture.data.prepare import prepare_data

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    print(json.dumps(prepare_data(load_config(args.config, args.overrides)).to_dict(), indent=2))
    return 0


def _inspect(args: argparse.Namespace) -> int:
    from handgesture.checkpoints.locate import resolve_checkpoint

    resolved = resolve_checkpoint(args.uri)
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


def _convert(args: argparse.Namespace) -> int:
    from pathlib import Path

    from handgesture.checkpoints.convert import convert_schema1
    from handgesture.checkpoints.format import from_bytes, to_bytes
    from handgesture.errors import CheckpointError
    from handgesture.storage.local import atomic_target

    source, target = Path(args.source), Path(args.target)
    if not source.is_file():
        raise CheckpointError(f"{source} does not exist (expected a schema-1 .pth checkpoint file)")
    converted = convert_schema1(from_bytes(source.read_bytes(), str(source)), str(source))
    with atomic_target(target) as temporary:
        temporary.write_bytes(to_bytes(converted))
    print(json.dumps({"converted": str(source), "to": str(target), "model_name": converted["model_name"]}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
