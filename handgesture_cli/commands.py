"""The subcommands that call the library directly: synth, prepare, evaluate, predict, export, inspect.

Each imports what it needs when it runs, so `handgesture --help` and the light commands start fast.
"""

from __future__ import annotations

import argparse
import json
import sys


def synth(args: argparse.Namespace) -> int:
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


def prepare(args: argparse.Namespace) -> int:
    from handgesture.config import load_config
    from handgesture.data.prepare import prepare_data

    _log_info_to_stderr()
    config = load_config(args.config, args.overrides)
    if config.prepare.dask:  # in shards on a Dask cluster: the prepare subflow (Prefect, prefect-dask)
        from flows.prepare import prepare_step

        print(json.dumps(prepare_step(config).to_dict(), indent=2))
        return 0
    print(json.dumps(prepare_data(config).to_dict(), indent=2))
    return 0


def evaluate(args: argparse.Namespace) -> int:
    from pathlib import Path

    from handgesture.errors import ConfigError

    if args.flow:
        from handgesture_cli.flow_commands import evaluate_in_flow

        if args.mistakes is not None:
            raise ConfigError("--mistakes is not a parameter of the evaluate flow (its contact sheet has 32)")
        report = evaluate_in_flow(args)
    else:
        from handgesture.evaluation import evaluate_checkpoint, evaluation_plan

        _log_info_to_stderr()
        mistakes = 32 if args.mistakes is None else args.mistakes
        _positive("--mistakes", mistakes + 1)  # 0 is allowed: no contact sheet
        config, start = evaluation_plan(args.uri, args.config, args.overrides)  # resolved once
        out = Path(args.out) if args.out else None
        report = evaluate_checkpoint(start, config, out, split=args.split, mistakes=mistakes)
    from handgesture.report import rounded

    keys = ("checkpoint", "split", "samples", "weighted", "files", "notes")
    printed = {key: rounded(report.to_dict()[key]) for key in keys}  # report.json keeps every digit
    if report.fairness:  # per group: [count, F1], the gap as [F1 difference, highest, lowest]
        from handgesture.fairness import fairness_summary

        printed["fairness"] = fairness_summary(report.fairness)
    print(json.dumps(printed, indent=2))
    return 0


def promote(args: argparse.Namespace) -> int:
    from dataclasses import asdict

    from handgesture.checkpoints.run_folder import split_checkpoint_uri
    from handgesture.evaluation import evaluation_plan
    from handgesture.promotion import promote_if_better
    from handgesture.report import rounded

    _log_info_to_stderr()
    _, start = evaluation_plan(args.uri, args.config, args.overrides)
    # The experiment is the one the checkpoint's run folder sits in: <storage>/<experiment>/<run>/.
    experiment_folder = split_checkpoint_uri(start.uri)[0].rpartition("/")[0]
    storage, _, experiment = experiment_folder.rpartition("/")
    where = [f"storage.uri={storage or '/'}", f"storage.experiment={experiment}"]
    config, start = evaluation_plan(start.uri, args.config, [*where, *args.overrides])
    decision = promote_if_better(config, start.uri, min_improvement=args.min_improvement)
    print(json.dumps(rounded(asdict(decision)), indent=2))
    return 0


def predict(args: argparse.Namespace) -> int:

    from handgesture.data import sources
    from handgesture.inference import load_model
    from handgesture.prediction import image_paths, read_boxes, targets_of, whole_image_note, without_boxes
    from handgesture.prediction import predict as predictions
    from handgesture.training.setup import pick_device

    _positive("--top-k", args.top_k)
    _positive("--batch-size", args.batch_size)
    sources.activate(_s3(args))  # --boxes may be on S3
    targets = targets_of(image_paths(args.images), read_boxes(args.boxes) if args.boxes else None)
    device = pick_device(args.device)
    loaded = load_model(args.uri, device, _s3(args))
    if loaded.full_frame:  # it classifies whole images: one record per image, whatever the boxes
        if args.boxes:
            note = f"note: --boxes {args.boxes} ignored: a full-frame model classifies each whole image"
            print(note, file=sys.stderr)
        targets = without_boxes(targets)
    elif note := whole_image_note(targets):
        print(note, file=sys.stderr)
    for record in predictions(loaded, targets, device=device, batch_size=args.batch_size, top_k=args.top_k):
        print(json.dumps(record), flush=True)
    return 0


def export(args: argparse.Namespace) -> int:
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


def inspect(args: argparse.Namespace) -> int:
    from handgesture.checkpoints.locate import resolve_checkpoint

    resolved = resolve_checkpoint(args.uri, _s3(args))
    checkpoint = resolved.checkpoint
    keys = (
        "schema_version",
        "origin",
        "model_name",
        "full_frame",
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


def _s3(args: argparse.Namespace):
    from handgesture.storage import S3Settings

    return S3Settings(block=args.block, endpoint_url=args.endpoint_url)


def _positive(name: str, value: int) -> None:
    from handgesture.errors import ConfigError

    if value < 1:
        raise ConfigError(f"{name} must be a positive integer, got {value}")


def _log_info_to_stderr() -> None:
    import logging

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
