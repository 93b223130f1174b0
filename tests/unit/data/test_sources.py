"""Data read where it lives, locally: a zip, per-gesture zips, zip:// chains and a single top folder read as
a plain folder is; keys from central directories; bad archives refused in one line; nothing extracted."""

import json
import os
import struct
import zipfile
from pathlib import Path

import pytest
import torch
from handgesture_cli.main import main as handgesture

from handgesture.data import sources
from handgesture.data.annotations import image_name, read_annotations
from handgesture.data.archives import MAX_MEMBER_BYTES
from handgesture.data.cache import cache_key, cache_settings
from handgesture.data.frames import read_frame
from handgesture.errors import DataError
from tests.archive_data import per_gesture_zips, tutorial_zips, zip_folder

TARGETS = ["call", "fist", "like"]
SETTINGS = cache_settings((32, 32))
DEMO = str(Path(__file__).resolve().parents[3] / "configs" / "demo.yaml")


@pytest.fixture(scope="module")
def layouts(tmp_path_factory):
    """One small dataset as a folder, the tutorial's two zips and HaGRID's per-gesture zips."""
    from handgesture.data.synthetic import generate_synthetic

    root = tmp_path_factory.mktemp("layouts")
    data = generate_synthetic(root / "plain", per_class=3, users=2, frame_size=(64, 64), targets=TARGETS)
    zips = tutorial_zips(data, root / "tutorial")
    return {"plain": data, "zips": zips, "per_gesture": per_gesture_zips(data["dataset"], root / "hagrid")}


def _rows(found):
    return [(image_name(s.image), s.box, s.gesture, s.leading_hand, s.user_id) for s in found.samples]


def test_every_form_reads_the_same_samples_and_frames_as_the_plain_folder(layouts):
    plain, zips = layouts["plain"], layouts["zips"]
    expected = read_annotations(plain["annotations"], plain["dataset"], TARGETS)
    forms = {
        "zip, top folder entered": (zips["annotations"], zips["dataset"]),
        "chain": (f"zip://ann_subsample::{zips['annotations']}", layouts["per_gesture"]),
        "chain file://": (f"zip://ann_subsample::file://{zips['annotations']}", f"file://{zips['dataset']}"),
        "annotations folder, per-gesture zips": (plain["annotations"], layouts["per_gesture"]),
    }
    for name, (annotations, dataset) in forms.items():
        found = read_annotations(str(annotations), str(dataset), TARGETS)
        assert _rows(found) == _rows(expected), name
        assert "!/" in found.samples[0].image, name
        assert torch.equal(read_frame(found.samples[0].image), read_frame(expected.samples[0].image)), name


def test_the_key_of_an_archive_holds_its_members_crc_and_changes_with_one_member(layouts, tmp_path):
    zips = layouts["zips"]
    found = read_annotations(str(zips["annotations"]), str(zips["dataset"]), TARGETS)
    key = cache_key(found.samples, SETTINGS, [], TARGETS)
    sources.activate()
    assert cache_key(found.samples, SETTINGS, [], TARGETS) == key  # nothing changed: the same key
    changed = tmp_path / "subsample.zip"
    victim = image_name(found.samples[0].image)
    with zipfile.ZipFile(zips["dataset"]) as old, zipfile.ZipFile(changed, "w") as new:
        for info in old.infolist():  # the same size, one byte different: only the CRC tells
            data = old.read(info)
            new.writestr(info, data[:-1] + bytes([data[-1] ^ 1]) if info.filename == victim else data)
    moved = read_annotations(str(zips["annotations"]), str(changed), TARGETS)
    assert cache_key(moved.samples, SETTINGS, [], TARGETS) != key


def test_the_key_reads_the_central_directory_not_the_frames(layouts, tmp_path):
    """A dataset of 2 MB frames keyed from a cold start (nothing listed) reads a few kilobytes."""
    frames = tmp_path / "big"
    plain = layouts["plain"]
    for path in Path(plain["dataset"]).rglob("*.jpg"):
        target = frames / path.relative_to(plain["dataset"])
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(path.read_bytes() + os.urandom(2 * 2**20))  # JPEG readers stop at its end
    archive = zip_folder(frames, tmp_path / "big.zip")
    samples = read_annotations(plain["annotations"], str(archive), TARGETS).samples
    sources.activate()  # a fresh process: the central directory is read again
    before = _bytes_read()
    cache_key(samples, SETTINGS, [], TARGETS)
    assert _bytes_read() - before < 64 * 1024 < archive.stat().st_size / 100


def _bytes_read() -> int:
    """Bytes this process read through system calls (Linux's /proc/self/io rchar)."""
    fields = dict(line.split(": ") for line in Path("/proc/self/io").read_text().splitlines())
    return int(fields["rchar"])


def _patched(archive: Path, out: Path, name: str, offset: int, fmt: str, value: int) -> Path:
    """``archive`` with one central-directory field of member ``name`` overwritten."""
    data = bytearray(archive.read_bytes())
    with zipfile.ZipFile(archive) as zf:
        header = zf.getinfo(name).header_offset
    entry = data.index(b"PK\x01\x02")
    while struct.unpack_from("<I", data, entry + 42)[0] != header:  # the member's central entry
        entry = data.index(b"PK\x01\x02", entry + 4)
    struct.pack_into(fmt, data, entry + offset, value)
    out.write_bytes(bytes(data))
    return out


def _escaping(tmp_path: Path) -> Path:
    with zipfile.ZipFile(tmp_path / "escape.zip", "w") as zf:
        zf.writestr("call/ok.jpg", b"x")
        zf.writestr("../call/evil.jpg", b"x")
    return tmp_path / "escape.zip"


@pytest.mark.parametrize("case", ["corrupt", "central directory", "escape", "bomb", "encrypted", "missing"])
def test_a_bad_archive_is_one_error_naming_it_and_the_member(layouts, tmp_path, case):
    zips = layouts["zips"]
    first = zipfile.ZipFile(zips["dataset"]).namelist()[0]
    bad, member = {
        "corrupt": (lambda: _write(tmp_path / "x.zip", os.urandom(5000)), None),
        "central directory": (
            lambda: _write(
                tmp_path / "x.zip", zips["dataset"].read_bytes().replace(b"PK\x01\x02", b"PK\x01\x09")
            ),
            None,
        ),
        "escape": (lambda: _escaping(tmp_path), "../call/evil.jpg"),
        "bomb": (
            lambda: _patched(zips["dataset"], tmp_path / "x.zip", first, 24, "<I", MAX_MEMBER_BYTES + 1),
            first,
        ),
        "encrypted": (lambda: _patched(zips["dataset"], tmp_path / "x.zip", first, 8, "<H", 1), first),
        "missing": (lambda: tmp_path / "absent.zip", None),
    }[case]
    archive = bad()
    with pytest.raises(DataError) as info:
        read_annotations(str(zips["annotations"]), str(archive), TARGETS)
    message = str(info.value)
    assert str(archive) in message and "\n" not in message
    assert member is None or repr(member) in message
    expected = {
        "escape": "escapes",
        "bomb": "zip bomb",
        "encrypted": "encrypted",
        "missing": "no such archive",
    }
    assert expected.get(case, "central directory") in message


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def test_a_frame_whose_member_is_damaged_is_skipped_and_counted(layouts, tmp_path, monkeypatch):
    """One member's bytes flipped (its CRC no longer matches): prepare skips that frame, counts it, and
    writes no frame anywhere but the cache."""
    zips = layouts["zips"]
    data = bytearray(zips["dataset"].read_bytes())
    with zipfile.ZipFile(zips["dataset"]) as zf:
        info = zf.infolist()[0]
    data[info.header_offset + 30 + len(info.filename) + 200] ^= 0xFF  # inside the stored JPEG
    damaged = _write(tmp_path / "subsample.zip", bytes(data))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    argv = [
        "prepare",
        "--config",
        DEMO,
        f"dataset.annotations={zips['annotations']}",
        f"dataset.dataset={damaged}",
        "dataset.targets=[call,fist,like]",
        f"dataset.cache_dir={tmp_path / 'cache'}",
        "dataset.image_size=[32,32]",
    ]
    assert handgesture(argv) == 0
    caches = list((tmp_path / "cache").iterdir())
    index = json.loads((caches[0] / "index.json").read_text())
    assert index["unreadable"] == 1 and index["count"] == 9
    assert not [p for p in tmp_path.rglob("*") if p.suffix == ".jpg"]


def test_prepare_exits_2_naming_an_archive_member_that_escapes(layouts, tmp_path, capsys):
    argv = ["prepare", "--config", DEMO, f"dataset.annotations={layouts['zips']['annotations']}"]
    argv += [f"dataset.dataset={_escaping(tmp_path)}", f"dataset.cache_dir={tmp_path / 'cache'}"]
    assert handgesture(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "escape.zip" in err and "'../call/evil.jpg'" in err
    assert not (tmp_path / "cache").exists() or not list((tmp_path / "cache").iterdir())
