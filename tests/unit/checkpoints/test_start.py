"""A start point pins its checkpoint file's bytes: what the run restores is what its config came from."""

import shutil

import pytest

from handgesture.checkpoints.format import from_bytes, to_bytes
from handgesture.checkpoints.start import open_start, resolve_start
from handgesture.errors import CheckpointError


def test_a_start_point_refuses_its_file_once_replaced(trained_run, tmp_path):
    summary, _ = trained_run
    path = tmp_path / "best_model.pth"  # the tutorial's bare file: no manifest to check it against
    shutil.copyfile(summary.best_checkpoint, path)
    start, resolved = resolve_start(str(path), "continue")
    assert (start.uri, start.sha256, start.mode) == (resolved.uri, resolved.sha256, "continue")
    assert start.config["model"]["name"] == resolved.checkpoint["model_name"]
    assert open_start(start).sha256 == start.sha256

    replaced = from_bytes(path.read_bytes(), str(path))
    replaced["epoch"] += 5  # another run's file saved over it after the flow's edge resolved it
    path.write_bytes(to_bytes(replaced))
    with pytest.raises(CheckpointError, match=f"resume {path}.*{start.sha256}"):
        open_start(start)


def test_a_start_point_names_a_file_never_a_reference(trained_run):
    summary, _ = trained_run
    start, _ = resolve_start(summary.run_uri, "finetune")  # a run folder: its newest committed checkpoint
    assert start.uri == summary.last_checkpoint and start.request == summary.run_uri
