"""The README's "Use the model" commands and its ONNX Runtime snippet, run as printed on a trained run (its
folder for `runs/demo/<run>`, its synthetic data for `data/synthetic`), in a scratch working directory."""

import ast
import contextlib
import io
import json
import re
from pathlib import Path

import pytest
from handgesture_cli.main import main as handgesture

from tests.readme import README, commands

pytestmark = pytest.mark.slow
SECTION = "Use the model: evaluate, predict, export"


def python_snippet(section: str) -> str:
    text = README.read_text().split(f"## {section}", 1)[1].split("\n## ", 1)[0]
    return re.search(r"```python\n(.*?)```", text, re.S)[1]


def test_the_use_section_runs_as_printed(trained_run, tmp_path, monkeypatch, capsys):
    summary, overrides = trained_run
    settings = dict(item.split("=", 1) for item in overrides)
    data = Path(settings["dataset.dataset"]).parent
    monkeypatch.chdir(tmp_path)

    def swapped(arg: str) -> str:
        arg = arg.replace("runs/demo/<run>", summary.run_uri)
        return arg.replace("data/synthetic/", f"{data}/")

    typed = [[swapped(word) for word in command] for command in commands(SECTION)]
    outputs, notes = [], []
    for command in typed:
        assert command[0] == "handgesture", command
        assert handgesture(command[1:]) == 0, command
        captured = capsys.readouterr()
        outputs.append(captured.out)
        notes.append([line for line in captured.err.splitlines() if line.startswith("note: ")])
    evaluate_test, evaluate_val, predict_folder, predict_boxes, onnx, torchscript, weights = outputs

    assert json.loads(evaluate_test)["split"] == "test"
    report = json.loads((tmp_path / "evaluations/latest/report.json").read_text())
    assert report["split"] == "val" and len(report["mistakes"]) <= 16
    palm = sorted((data / "images" / "palm").glob("*.jpg"))
    # The annotations folder gives each palm image it annotates its hands. The rest (this data's test split,
    # annotated in another folder; the demo has none) are whole-image guesses, and the note says so once.
    lines = [json.loads(line) for line in predict_folder.splitlines()]
    annotated = {name for f in (data / "annotations").glob("*.json") for name in json.loads(f.read_text())}
    whole = {p for p in palm if p.stem not in annotated}
    assert {Path(line["image"]) for line in lines} == set(palm) and all(
        len(line["top_k"]) == 3 for line in lines
    )
    assert {Path(line["image"]) for line in lines if line["box"] is None} == whole
    assert len(notes[2]) == (1 if whole else 0)
    # palm.json over the whole images folder: the other gestures' images are whole-image guesses, said once.
    boxed = [json.loads(line) for line in predict_boxes.splitlines()]
    in_palm = {Path(line["image"]).stem for line in boxed if line["box"] is not None}
    assert in_palm == set(json.loads((data / "annotations" / "palm.json").read_text())) & {
        p.stem for p in palm
    }
    [note] = notes[3]
    assert "have no hand boxes" in note and "--boxes" in note
    assert (tmp_path / "model.onnx").is_file() and (tmp_path / "model.json").is_file()
    assert (tmp_path / "exported/model.pt").is_file() and (tmp_path / "exported/weights.pth").is_file()

    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        exec(python_snippet(SECTION), {})  # in tmp_path, beside the model.onnx the export wrote
    listed, hand = printed.getvalue().rsplit(" ", 1)
    classes, hand = ast.literal_eval(listed), hand.strip()
    meta = json.loads((tmp_path / "model.json").read_text())
    assert len(classes) == 4 and set(classes) <= set(meta["class_names"]) and hand in meta["hand_names"]
