"""Nothing escapes: URIs, keys and pointers that would read or write outside where they belong are refused."""

import errno
import json
from pathlib import Path

import pytest
from handgesture_cli.main import main

from handgesture.checkpoints.best import read_best
from handgesture.checkpoints.locate import resolve_checkpoint
from handgesture.errors import CheckpointError, InputError, InvalidStorageURIError, StorageError
from handgesture.storage import open_store


@pytest.mark.parametrize("uri", ["s3://b/../../../../tmp/x", "s3://b/runs/../other", "s3://b/./runs"])
def test_dot_segments_in_s3_uris_are_refused(uri):
    with pytest.raises(InvalidStorageURIError, match="without '.' or '..' segments"):
        open_store(uri)


def test_inspect_of_an_escaping_s3_uri_writes_nothing(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("HANDGESTURE_CACHE", str(tmp_path / "cache"))
    target = tmp_path / "x"
    assert main(["inspect", f"s3://b/../../../..{target}/best_model.pth"]) == 2
    assert "'..'" in capsys.readouterr().err
    assert not target.exists() and not (tmp_path / "cache").exists()


def test_a_file_uri_with_a_host_is_refused_not_read_as_a_relative_path(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "otherhost").mkdir()
    (tmp_path / "otherhost" / "best_model.pth").write_bytes(b"not even a checkpoint")
    with pytest.raises(InvalidStorageURIError, match="no remote host"):
        resolve_checkpoint("file://otherhost/best_model.pth")


def test_a_best_pointer_that_leads_outside_its_experiment_is_refused(tmp_path):
    experiment = open_store(str(tmp_path / "runs" / "demo"))
    elsewhere = tmp_path / "runs" / "other" / "run" / "best_model.pth"
    for checkpoint in (str(elsewhere), f"{experiment.root}/../other/run/best_model.pth"):
        experiment.put_bytes(json.dumps({"checkpoint": checkpoint}).encode(), "best.json")
        with pytest.raises(CheckpointError, match="outside its experiment"):
            read_best(experiment)


def test_a_full_disk_is_an_error_naming_the_path(tmp_path, monkeypatch):
    store = open_store(str(tmp_path / "runs"))

    def full(self, data):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(Path, "write_bytes", full)
    with pytest.raises(StorageError, match=r"cannot write .*runs/m\.pt: No space left on device") as info:
        store.put_bytes(b"weights", "m.pt")
    assert not isinstance(info.value, InputError)  # space can be freed: not the user's input
    assert not list((tmp_path / "runs").glob("*.partial"))
