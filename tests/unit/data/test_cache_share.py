"""Prepared crop caches shared through a store: published once, downloaded (not rebuilt) elsewhere."""

import json
import logging
import shutil

import pytest
from handgesture_cli.main import main

from handgesture.data.annotations import read_annotations
from handgesture.data.cache import open_cache, prepare_cache
from handgesture.data.cache_share import CacheShare
from handgesture.data.synthetic import generate_synthetic
from handgesture.errors import DataError
from handgesture.storage import open_store

TARGETS = ["call", "fist", "palm", "no_gesture"]
SIZE = (48, 48)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    out = tmp_path_factory.mktemp("synth")
    info = generate_synthetic(out, per_class=3, users=2, frame_size=(320, 240), seed=2, targets=TARGETS)
    return out, read_annotations(info["annotations"], info["dataset"], TARGETS).samples


def _other_machine(out, tmp_path):
    """A copy of the dataset elsewhere whose frames cannot be decoded (same byte sizes, all zeros), so
    crops there can only come from a downloaded cache."""
    copy = tmp_path / "other-machine"
    shutil.copytree(out, copy)
    for image in (copy / "images").rglob("*.jpg"):
        image.write_bytes(bytes(image.stat().st_size))
    return read_annotations(copy / "annotations", copy / "images", TARGETS).samples


def test_published_cache_is_downloaded_on_another_machine(data, tmp_path):
    out, samples = data
    share = CacheShare(open_store(tmp_path / "share"))
    first = prepare_cache(samples, SIZE, tmp_path / "a", share=share)
    assert first.origin == "prepared"
    shared = tmp_path / "share" / first.folder.name
    assert sorted(p.name for p in shared.iterdir()) == ["crops.bin", "index.json", "rows.npy", "samples.json"]

    fetched = prepare_cache(_other_machine(out, tmp_path), SIZE, tmp_path / "b", share=share)
    assert fetched.origin == "downloaded" and fetched.unreadable == 0
    assert (fetched.folder / "crops.bin").read_bytes() == (first.folder / "crops.bin").read_bytes()
    assert fetched.dataset(train=True)[(1, 4)] is not None
    assert prepare_cache(fetched.samples, SIZE, tmp_path / "b", share=share).origin == "reused"


def test_corrupt_shared_copy_is_never_used(data, tmp_path, caplog):
    out, samples = data
    share = CacheShare(open_store(tmp_path / "share"))
    folder = prepare_cache(samples, SIZE, tmp_path / "a", share=share).folder
    crops = tmp_path / "share" / folder.name / "crops.bin"
    good = crops.read_bytes()
    crops.write_bytes(good[:50] + bytes([good[50] ^ 0xFF]) + good[51:])
    with caplog.at_level(logging.WARNING):
        again = prepare_cache(samples, SIZE, tmp_path / "b", share=share)
    assert again.origin == "prepared" and "failed verification" in caplog.text
    assert (again.folder / "crops.bin").read_bytes() == good
    assert crops.read_bytes() == good  # the shared copy is replaced by the good one


def test_unreadable_share_falls_back_to_preparing_locally(data, tmp_path, caplog):
    _, samples = data
    blocked = tmp_path / "share"
    blocked.write_text("a file where the share's folder should be")
    with caplog.at_level(logging.WARNING):
        cache = prepare_cache(samples, SIZE, tmp_path / "a", share=CacheShare(open_store(blocked)))
    assert cache.origin == "prepared" and "Crop cache share" in caplog.text


def test_prepare_command_reports_each_split_and_reuses(tmp_path, capsys):
    synth = ["synth", str(tmp_path / "d"), "--per-class", "2", "--users", "3", "--test-per-class", "1"]
    assert main(synth) == 0
    written = json.loads(capsys.readouterr().out)
    args = [
        "prepare",
        f"dataset.annotations={written['annotations']}",
        f"dataset.dataset={written['dataset']}",
        f"dataset.test_annotations={written['test_annotations']}",
        f"dataset.cache_dir={tmp_path / 'cache'}",
        "dataset.image_size=[32,32]",
        "synthetic.generate_if_missing=false",
    ]
    assert main(args) == 0
    first = json.loads(capsys.readouterr().out)["splits"]
    assert first["train"]["origin"] == "prepared" and first["test"]["origin"] == "prepared"
    assert first["train"]["samples"] > 0 and first["train"]["bytes"] > 0
    assert main(args) == 0
    assert json.loads(capsys.readouterr().out)["splits"]["train"]["origin"] == "reused"


def test_prepare_command_rejects_a_bad_format_with_status_2(capsys):
    assert main(["prepare", "dataset.cache_format=png"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "dataset.cache_format" in err and "png" in err


def _forge(shared, samples=None, index=None):
    """Rewrite a shared cache as an attacker with write access to the share would: edit samples.json and/or
    index.json, then update the index's sizes and sha256 so the copy is self-consistent."""
    from handgesture.storage import sha256_file

    if samples is not None:
        columns = json.loads((shared / "samples.json").read_text())
        samples(columns)
        (shared / "samples.json").write_text(json.dumps(columns))
    meta = json.loads((shared / "index.json").read_text())
    for name, entry in meta["files"].items():
        entry.update(size=(shared / name).stat().st_size, sha256=sha256_file(shared / name))
    if index is not None:
        index(meta)
    (shared / "index.json").write_text(json.dumps(meta))


def _one_class(columns):
    columns["gestures"] = [0] * len(columns["gestures"])


def _escaping_image(columns):
    columns["images"][0] = "../../../../etc/passwd"


def _bad_settings(meta):
    meta["settings"] = {"side": "huge", "extra": 1}


@pytest.mark.parametrize(
    "forgery",
    [{"samples": _one_class}, {"samples": _escaping_image}, {"index": _bad_settings}],
    ids=["labels-all-one-class", "image-escapes-the-dataset", "malformed-settings"],
)
def test_a_self_consistent_forged_share_is_refused_and_prepared_locally(data, tmp_path, caplog, forgery):
    _, samples = data
    share_dir = tmp_path / "share"
    folder = prepare_cache(samples, SIZE, tmp_path / "a", share=CacheShare(open_store(share_dir))).folder
    good = (folder / "samples.json").read_text()
    _forge(share_dir / folder.name, **forgery)
    with caplog.at_level(logging.WARNING):
        again = prepare_cache(samples, SIZE, tmp_path / "b", share=CacheShare(open_store(share_dir)))
    assert again.origin == "prepared"
    assert "failed verification" in caplog.text and str(share_dir) in caplog.text
    assert (again.folder / "samples.json").read_text() == good
    assert (
        open_cache(again.folder, again.key, SIZE, tmp_path).samples
        == open_cache(folder, again.key, SIZE, tmp_path).samples
    )
    assert (share_dir / folder.name / "samples.json").read_text() == good  # replaced by the good copy


def test_a_forged_local_cache_folder_is_rebuilt_not_reused(data, tmp_path, caplog):
    """A cache folder downloaded before the share was checked (or edited in place) is checked on reuse too."""
    _, samples = data
    folder = prepare_cache(samples, SIZE, tmp_path / "a").folder
    good = (folder / "samples.json").read_text()
    _forge(folder, samples=_one_class)
    with caplog.at_level(logging.WARNING):
        again = prepare_cache(samples, SIZE, tmp_path / "a")
    assert again.origin == "prepared" and (folder / "samples.json").read_text() == good


def test_an_opened_cache_refuses_image_names_outside_the_dataset(data, tmp_path):
    _, samples = data
    cache = prepare_cache(samples, SIZE, tmp_path / "a")
    _forge(cache.folder, samples=_escaping_image)
    with pytest.raises(DataError, match=r"samples\.json.*\.\./\.\./"):
        open_cache(cache.folder, cache.key, SIZE, tmp_path)


def test_a_deeply_nested_shared_index_prepares_locally(data, tmp_path, caplog):
    _, samples = data
    share_dir = tmp_path / "share"
    folder = prepare_cache(samples, SIZE, tmp_path / "a", share=CacheShare(open_store(share_dir))).folder
    (share_dir / folder.name / "index.json").write_text("[" * 100_000 + "]" * 100_000)
    with caplog.at_level(logging.WARNING):
        again = prepare_cache(samples, SIZE, tmp_path / "b", share=CacheShare(open_store(share_dir)))
    assert again.origin == "prepared" and str(share_dir) in caplog.text
