"""The commands a finished run prints (its summary, the same ones in its report) work when run as printed."""

import asyncio
import json

import pytest
import torch

from handgesture.report_layout import unwrapped
from tests.commands import printed, run_cli_command, run_flow_command, serve_tensorboard, train
from tests.flow.test_flow import _artifacts
from tests.report_width import markdown_problems

pytestmark = pytest.mark.slow


def test_the_summary_and_report_commands_continue_the_run_and_open_tensorboard(
    prefect_harness, tiny_dataset, tmp_path, capsys
):
    overrides = [
        f"dataset.annotations={tiny_dataset['annotations']}",
        f"dataset.dataset={tiny_dataset['dataset']}",
        f"dataset.cache_dir={tmp_path / 'cache'}",
        "dataset.image_size=[32,32]",
        "model.name=MobileNetV3_small",
        "train_params.train_batch_size=16",
        "train_params.num_workers=0",
    ]
    first = train(
        ["--config", "configs/demo.yaml", "--epochs", "1", "--storage", str(tmp_path / "runs"), *overrides]
    )
    output = capsys.readouterr().out
    resume, tensorboard = printed(output, "resume from it:"), printed(output, "open TensorBoard:")
    flow_run_id = torch.load(first.last_checkpoint, weights_only=True)["lineage"]["flow_run_id"]
    report = next(a.data for a in asyncio.run(_artifacts(flow_run_id)) if a.key == "demo-report")
    evaluate, export = printed(output, "evaluate it:"), printed(output, "export it:")
    # The report prints the same commands, long ones wrapped one option per line (report_layout.wrapped).
    for command in (resume, tensorboard, evaluate, export):
        assert command in unwrapped(report)
    assert markdown_problems(report) == [], report  # and it fits the UI at 1280 px

    evaluated = json.loads(run_cli_command(evaluate, tmp_path))
    assert evaluated["checkpoint"] == first.best_checkpoint and evaluated["split"] == "val"
    assert (tmp_path / evaluated["files"]["report"]).is_file()
    exported = json.loads(run_cli_command(export, tmp_path))
    assert exported["path"] == "model.onnx" and (tmp_path / "model.onnx").is_file()
    assert json.loads((tmp_path / "model.json").read_text())["source"]["uri"] == first.best_weights

    continued = run_flow_command(resume)  # no config, no overrides: the checkpoint knows them
    assert continued.resumed_from == first.best_checkpoint
    assert continued.epochs == first.epochs + 5  # 5 more, from the checkpoint's own epoch
    assert [row["epoch"] for row in continued.history] == [1, 2, 3, 4, 5, 6]  # its history carried on
    runs = {first.run_uri.rsplit("/", 1)[1], continued.run_uri.rsplit("/", 1)[1]}
    assert runs <= serve_tensorboard(tensorboard, runs)
