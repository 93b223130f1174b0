"""The `handgesture` command: make synthetic data, prepare crop caches, train (the Prefect flow), inspect a
checkpoint."""

from __future__ import annotations

import argparse
import json
import sys

from handgesture.checkpoint import CheckpointError
from handgesture.config import ConfigError
from handgesture.data.annotations import DataError
from handgesture.storage import StorageError

# Errors that mean the input was wrong: reported as one line and exit status 2, not a traceback.
USER_ERRORS = (ConfigError, DataError, CheckpointError, StorageError)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["train"]:
        from flows.train import main as train_main

        train_main(argv[1:])
        return 0
    args = _parser().parse_args(argv)
    try:
        return args.handler(args)
    except USER_ERRORS as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="handgesture", description=__doc__)
    commands = parser.add_subparsers(required=True, metavar="{synth,prepare,train,inspect}")
    synth = commands.add_parser("synth", help="write a synthetic dataset in HaGRID's format")
    synth.add_argument("out_dir")
    synth.add_argument("--per-class", type=int, default=40, help="images per gesture (default 40)")
    synth.add_argument("--users", type=int, default=10, help="distinct user_ids (default 10)")
    synth.add_argument("--frame", type=int, nargs=2, default=[320, 240], metavar=("W", "H"))
    synth.add_argument("--test-per-class", type=int, default=0, help="also write a test split")
    synth.add_argument("--seed", type=int, default=0)
    synth.set_defaults(handler=_synth)
    prepare = commands.add_parser("prepare", help="build (or fetch) the crop caches training reads")
    prepare.add_argument("--config", help="config YAML merged over configs/default.yaml")
    prepare.add_argument("overrides", nargs="*", metavar="key=value", help="dotlist config overrides")
    prepare.set_defaults(handler=_prepare)
    commands.add_parser("train", help="run the training flow (see `handgesture train --help`)")
    inspect = commands.add_parser("inspect", help="print what a checkpoint or run holds")
    inspect.add_argument("uri", help="checkpoint file, run folder, file:// or s3:// URI")
    inspect.set_defaults(handler=_inspect)
    return parser


def _synth(args: argparse.Namespace) -> int:
    from handgesture.data.synthetic import generate_synthetic

    written = generate_synthetic(
        args.out_dir,
        per_class=args.per_class,
        users=args.users,
        frame_size=tuple(args.frame),
        seed=args.seed,
        test_per_class=args.test_per_class,
    )
    print(json.dumps(written, indent=2, default=str))
    return 0


def _prepare(args: argparse.Namespace) -> int:
    import logging

    from handgesture.config import load_config
    from handgesture.prepare import prepare_data

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    print(json.dumps(prepare_data(load_config(args.config, args.overrides)), indent=2))
    return 0


def _inspect(args: argparse.Namespace) -> int:
    from handgesture.resolve import resolve_checkpoint

    resolved = resolve_checkpoint(args.uri)
    checkpoint = resolved.checkpoint
    keys = (
        "schema_version",
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
