"""The one command line: `handgesture` and its subcommands; `python flows/train.py` through its parser."""

import json
import os
import subprocess
import sys
from pathlib import Path

from handgesture_cli.main import main

from handgesture.data.annotations import read_annotations
from handgesture.labels import HAGRID_TARGETS


def test_synth_command_writes_a_hagrid_format_dataset(tmp_path, capsys):
    assert main(["synth", str(tmp_path / "out"), "--per-class", "2", "--users", "3"]) == 0
    written = json.loads(capsys.readouterr().out)
    found = read_annotations(written["annotations"], written["dataset"], HAGRID_TARGETS)
    assert len({s.user_id for s in found.samples}) == 3
    assert found.missing_images == 0


def test_inspect_reports_bad_input_in_one_line_with_status_2(tmp_path, capsys):
    assert main(["inspect", str(tmp_path / "missing.pth")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "missing.pth" in err and "Traceback" not in err


def test_synth_command_writes_hagrid_v2(tmp_path, capsys):
    from handgesture.labels import HAGRID_V2_TARGETS

    args = ["synth", str(tmp_path / "v2"), "--per-class", "1", "--users", "2", "--hagrid-version", "2"]
    assert main(args) == 0
    written = json.loads(capsys.readouterr().out)
    found = read_annotations(written["annotations"], written["dataset"], HAGRID_V2_TARGETS)
    assert {s.leading_hand for s in found.samples} == {-1} and len(found.samples) >= len(HAGRID_V2_TARGETS)
    splits = [written[f"{key}annotations"] for key in ("", "val_", "test_")]  # the folders, as v2 ships
    assert splits == [str(tmp_path / "v2" / "hagrid_annotations" / s) for s in ("train", "val", "test")]
    assert written["dataset"] == str(tmp_path / "v2" / "hagrid_dataset")


def test_synth_reports_bad_arguments_in_one_line_with_status_2(tmp_path, capsys):
    assert main(["synth", str(tmp_path / "out"), "--per-class", "0"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "per_class" in err and "Traceback" not in err


ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def run(*command: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "COLUMNS": "100"}  # argparse wraps its help to the terminal's width
    return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)


def test_handgesture_lists_every_subcommand():
    done = run(str(BIN / "handgesture"), "--help")
    assert done.returncode == 0
    for command in ("synth", "prepare", "train", "evaluate", "predict", "export", "inspect"):
        assert f"    {command} " in done.stdout
    assert "convert" not in done.stdout


def test_python_flows_train_is_handgesture_train_through_the_same_parser():
    console, script = (
        run(str(BIN / "handgesture"), "train", "--help"),
        run(sys.executable, "flows/train.py", "--help"),
    )
    assert console.returncode == script.returncode == 0
    assert script.stdout == console.stdout and console.stdout.startswith("usage: handgesture train")


def test_a_bad_override_through_python_flows_train_exits_2_with_one_error_line():
    done = run(sys.executable, "flows/train.py", "--epochs", "1", "optimizer.lr=[1,")
    assert done.returncode == 2 and done.stdout == ""
    [line] = done.stderr.strip().splitlines()
    assert line.startswith("error: ") and "optimizer.lr" in line
