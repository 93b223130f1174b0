"""`handgesture export` on a trained run: each format from the command line, and its bad input."""

import json
from pathlib import Path

import pytest
import torch

from handgesture.cli import main
from handgesture.inference import load_model

pytestmark = pytest.mark.slow


def test_the_export_command_writes_each_format_with_its_description(trained_run, tmp_path, capsys):
    best = trained_run[0].best_checkpoint
    assert main(["export", best, "--format", "onnx", "--out", str(tmp_path / "onnx" / "gestures.onnx")]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["max_abs_diff"] <= 1e-4 and Path(printed["path"]).is_file()
    sidecar = json.loads((tmp_path / "onnx" / "gestures.json").read_text())
    assert sidecar["source"]["uri"] == best and sidecar["input"]["layout"] == "NHWC"

    assert main(["export", best, "--format", "torchscript", "--out", str(tmp_path / "model.pt")]) == 0
    assert json.loads(capsys.readouterr().out)["max_abs_diff"] <= 1e-4

    slim = tmp_path / "weights.pth"
    assert main(["export", best, "--format", "weights", "--out", str(slim)]) == 0
    # The full checkpoint also carries SGD's momentum buffers (one more copy of the weights; Adam keeps two).
    assert slim.stat().st_size < 0.6 * Path(best).stat().st_size
    images = torch.randint(0, 256, (2, 3, 32, 32)).float() / 255
    with torch.no_grad():
        theirs, ours = load_model(best).model(images), load_model(str(slim)).model(images)
    assert all(torch.equal(theirs[head], ours[head]) for head in ("gesture", "leading_hand"))


def test_the_run_folder_s_best_weights_file_exports_too(trained_run, tmp_path, capsys):
    weights = trained_run[0].best_weights
    assert weights and weights.endswith("best_weights.pth")
    assert main(["export", weights, "--format", "onnx", "--out", str(tmp_path / "model.onnx")]) == 0
    assert json.loads((tmp_path / "model.json").read_text())["source"]["uri"] == weights


def test_the_export_command_reports_bad_input_with_status_2(trained_run, tmp_path, capsys):
    assert main(["export", str(tmp_path / "missing.pth"), "--format", "onnx"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "missing.pth" in err
    with pytest.raises(SystemExit) as exit_info:
        main(["export", trained_run[0].best_checkpoint, "--format", "tflite"])
    assert exit_info.value.code == 2 and "invalid choice: 'tflite'" in capsys.readouterr().err
