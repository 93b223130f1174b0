"""`handgesture export` on a trained run: each format from the command line, and its bad input."""

import json
import shutil
from pathlib import Path

import pytest
import torch
from handgesture_cli.main import main

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


@pytest.fixture
def experiment(trained_run, tmp_path):
    """A copy of the trained run's experiment folder with a best pointer, as promotion leaves it: the run
    folder (manifest, checkpoints) and best.json. A copy, so the session's run stays as it was."""
    run = Path(trained_run[0].run_uri)
    folder = tmp_path / "experiment"
    shutil.copytree(run, folder / run.name)
    best = {"checkpoint": str(folder / run.name / "best_model.pth"), "sha256": "0" * 64}
    (folder / "best.json").write_text(json.dumps(best))
    return folder, folder / run.name


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def refused(capsys, *names: str) -> str:
    """The one line an export refusal prints; it names each of `names` and says what was expected."""
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.count("\n") == 1 and captured.err.startswith("error: ")
    assert all(name in captured.err for name in names) and "expected" in captured.err
    return captured.err


@pytest.mark.parametrize("force", [[], ["--force"]])
def test_export_never_writes_into_a_run_folder_or_over_the_best_pointer(experiment, force, capsys):
    """The red team's three cases, each of which exited 0 and destroyed the run: the sidecar of
    RUN/manifest.pt replaced the run manifest, that of EXPERIMENT/best.pt the best pointer, and a weights
    export over the run's committed checkpoint replaced it. Refused even with --force; nothing written."""
    folder, run = experiment
    best = str(run / "best_model.pth")
    committed = next((run / "checkpoints").glob("*.pth"))
    before = snapshot(folder)
    cases = [
        (["--format", "torchscript", "--out", str(run / "manifest.pt")], run / "manifest.json"),
        (["--format", "onnx", "--out", str(folder / "best.pt")], folder / "best.json"),
        (["--format", "weights", "--out", str(committed)], committed),
        (["--format", "onnx", "--out", str(run / "exports" / "model.onnx")], run),  # below a run, new
        (["--format", "torchscript", "--out", str(folder / "model.pt")], folder / "best.json"),  # beside it
    ]
    for args, named in cases:
        assert main(["export", best, *args, *force]) == 2, args
        refused(capsys, str(named))
    assert snapshot(folder) == before
    assert not (run / "exports").exists()


def test_an_existing_file_is_kept_unless_forced_and_then_only_when_it_is_our_export(
    trained_run, tmp_path, capsys
):
    best = trained_run[0].best_checkpoint
    theirs = tmp_path / "theirs"
    theirs.mkdir()
    (theirs / "model.pt").write_bytes(b"someone else's model")
    (theirs / "model.json").write_text('{"format": "torchscript", "file": "model.pt"}')  # not our sidecar
    (theirs / "notes.pt").write_bytes(b"no sidecar at all")
    (theirs / "config.json").write_text("{}")  # what config.pt's sidecar would replace
    (theirs / "weights.pth").write_bytes(Path(best).read_bytes())  # a full checkpoint, not our export
    before = snapshot(theirs)
    for name, fmt in (("model.pt", "torchscript"), ("notes.pt", "torchscript"), ("config.pt", "onnx")):
        for force in ([], ["--force"]):
            assert main(["export", best, "--format", fmt, "--out", str(theirs / name), *force]) == 2
            refused(capsys, str(theirs))
    for force in ([], ["--force"]):
        assert (
            main(["export", best, "--format", "weights", "--out", str(theirs / "weights.pth"), *force]) == 2
        )
        refused(capsys, str(theirs / "weights.pth"))
    assert snapshot(theirs) == before

    ours = tmp_path / "ours"
    for fmt, name in (("torchscript", "model.pt"), ("weights", "w.pth")):
        out = str(ours / name)
        assert main(["export", best, "--format", fmt, "--out", out]) == 0
        capsys.readouterr()
        assert main(["export", best, "--format", fmt, "--out", out]) == 2
        refused(capsys, out, "--force")
        assert main(["export", best, "--format", fmt, "--out", out, "--force"]) == 0
    capsys.readouterr()
    (ours / "model.pt").write_bytes(b"replaced since")  # the sidecar no longer describes what is there
    assert main(["export", best, "--format", "torchscript", "--out", str(ours / "model.pt"), "--force"]) == 2
    refused(capsys, str(ours / "model.pt"), "sha256")
    assert (ours / "model.pt").read_bytes() == b"replaced since"
