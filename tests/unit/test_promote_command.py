"""`handgesture promote`: a run already in the experiment becomes its best (what the scheduled retrain
fine-tunes from) through the retrain's own gate."""

import json
import shutil
from pathlib import Path

from handgesture_cli.main import main


def _copied_run(trained_run, tmp_path) -> Path:
    """The shared trained run, copied into an experiment of this test's own (no best pointer yet)."""
    summary, _ = trained_run
    run = Path(summary.run_uri)
    copy = tmp_path / "runs" / run.parent.name / run.name
    shutil.copytree(run, copy, ignore=shutil.ignore_patterns("lease.json"))
    return copy


def test_a_run_is_promoted_when_there_is_no_best_and_only_then(trained_run, tmp_path, capsys):
    run = _copied_run(trained_run, tmp_path)
    checkpoint = str(run / "best_model.pth")
    assert main(["promote", checkpoint]) == 0
    decision = json.loads(capsys.readouterr().out)
    assert decision["promoted"] and decision["reason"].startswith("no current best")
    pointer = json.loads((run.parent / "best.json").read_text())
    assert pointer["checkpoint"] == checkpoint and decision["pointer"] == str(run.parent / "best.json")

    assert main(["promote", checkpoint]) == 0  # the same model does not beat itself: the pointer stays
    again = json.loads(capsys.readouterr().out)
    assert not again["promoted"] and "does not beat" in again["reason"]
    assert json.loads((run.parent / "best.json").read_text()) == pointer


def test_a_checkpoint_that_is_not_there_is_one_error_with_status_2(tmp_path, capsys):
    assert main(["promote", str(tmp_path / "runs/demo/run/best_model.pth")]) == 2
    [line] = capsys.readouterr().err.strip().splitlines()[-1:]
    assert line.startswith("error: ") and "best_model.pth" in line
