"""What a notebook loads from an experiment folder when no model is named: the promoted best, else the run
that scored highest, never merely the newest."""

import json
import os

import pytest
import torch

from handgesture.checkpoints.format import SCHEMA_VERSION
from handgesture.errors import CheckpointError
from handgesture.inference import experiment_best


def _run(experiment, name: str, f1: float, mtime: int):
    path = experiment / name / "best_model.pth"
    path.parent.mkdir(parents=True)
    checkpoint = {"schema_version": SCHEMA_VERSION, "state_dict": {}, "metrics": {"gesture/f1_score": f1}}
    torch.save(checkpoint, path)
    os.utime(path, (mtime, mtime))
    return path


def test_the_highest_scoring_run_not_the_newest(tmp_path):
    best = _run(tmp_path, "demo-long", 1.0, mtime=1_000)
    _run(tmp_path, "retrain-short", 0.0025, mtime=2_000)  # newer, and far worse
    assert experiment_best(tmp_path) == str(best)


def test_a_promoted_best_wins(tmp_path):
    _run(tmp_path, "demo-long", 1.0, mtime=1_000)
    (tmp_path / "best.json").write_text(json.dumps({"checkpoint": "x", "sha256": "y"}))
    assert experiment_best(tmp_path) == str(tmp_path / "best")


def test_an_experiment_without_runs_is_one_error_naming_it(tmp_path):
    with pytest.raises(CheckpointError, match=f"{tmp_path} holds no run with a best_model.pth"):
        experiment_best(tmp_path)
