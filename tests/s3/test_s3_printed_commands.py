"""The commands an S3 run prints work as printed: the resume command reaches the bucket through the storage
settings it carries, and TensorBoard reads the event files from s3:// (S3_ENDPOINT for the local server)."""

import json

import pytest

from tests.commands import printed, run_cli_command, run_flow_command, serve_tensorboard, train
from tests.tiny import tiny_dotlist

pytestmark = [pytest.mark.s3, pytest.mark.slow]


def test_printed_commands_of_an_s3_run(prefect_harness, tiny_dataset, s3_env, s3_bucket, capsys, tmp_path):
    overrides = [*tiny_dotlist(tiny_dataset), f"storage.endpoint_url={s3_env.endpoint_url}"]
    first = train(
        ["--config", "configs/demo.yaml", "--epochs", "1", "--storage", f"s3://{s3_bucket}/runs", *overrides]
    )
    output = capsys.readouterr().out
    resume, tensorboard = printed(output, "resume from it:"), printed(output, "open TensorBoard:")
    assert f"storage.endpoint_url={s3_env.endpoint_url}" in resume and resume.startswith(
        "python flows/train.py"
    )
    assert tensorboard.startswith(f"S3_ENDPOINT={s3_env.endpoint_url} tensorboard --logdir s3://{s3_bucket}/")

    evaluate, export = printed(output, "evaluate it:"), printed(output, "export it:")
    assert f"storage.endpoint_url={s3_env.endpoint_url}" in evaluate
    assert f"--endpoint-url {s3_env.endpoint_url}" in export
    evaluated = json.loads(run_cli_command(evaluate, tmp_path))
    assert evaluated["checkpoint"] == first.best_checkpoint
    exported = json.loads(run_cli_command(export, tmp_path))
    assert exported["path"] == "model.onnx" and exported["max_abs_diff"] <= 1e-4

    continued = run_flow_command(resume)
    assert continued.resumed_from == first.best_checkpoint and continued.epochs == 6
    assert continued.run_uri.startswith(f"s3://{s3_bucket}/runs/demo/")  # the checkpoint's own storage
    runs = {first.run_uri.rsplit("/", 1)[1], continued.run_uri.rsplit("/", 1)[1]}
    assert runs <= serve_tensorboard(tensorboard, runs)
