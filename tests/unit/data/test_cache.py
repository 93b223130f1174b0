"""Crop cache: same crops as the full-frame path, keyed by content, stale or corrupt caches rebuilt."""

import json
import os
import shutil
from pathlib import Path

import msgspec
import numpy as np
import pytest
import torch

from handgesture.data.annotations import read_annotations
from handgesture.data.cache import prepare_cache
from handgesture.data.cached_dataset import CachedCropDataset
from handgesture.data.dataset import HandCropDataset
from handgesture.data.geometry import square_crop_box
from handgesture.data.synthetic import generate_synthetic

TARGETS = ["call", "fist", "palm", "peace", "no_gesture"]
SIZE = (64, 64)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    out = tmp_path_factory.mktemp("synth")
    info = generate_synthetic(out, per_class=3, users=2, frame_size=(320, 240), seed=5, targets=TARGETS)
    return out, info, read_annotations(info["annotations"], info["dataset"], TARGETS).samples


def _keys(n):
    return [0] + [(i, seed) for i in range(n) for seed in (0, 1, 7, 123)] + list(range(n))


@pytest.mark.parametrize("levels", [1, 2])
@pytest.mark.parametrize("size", [SIZE, (48, 64)])
def test_cached_crops_match_full_frame_crops(data, tmp_path, size, levels):
    _, _, samples = data
    cache = prepare_cache(samples, size, tmp_path, fmt="raw", levels=levels)
    ref, cached = HandCropDataset(samples, size, train=True), cache.dataset(train=True)
    edge = [i for i, s in enumerate(samples) if min(square_crop_box(s.box, 320, 240, 1.0)[:2]) <= 0]
    assert edge, "the synthetic set should hold boxes at the frame edge"
    for key in _keys(len(samples)):
        a, b = ref[key], cached[key]
        assert (a["gesture"], a["leading_hand"]) == (b["gesture"], b["leading_hand"])
        diff = (a["image"].int() - b["image"].int()).abs()
        assert b["image"].shape == (3, *size) and b["image"].dtype == torch.uint8
        # Up to resampling: rows shrunk to the cache side are filtered twice (noisy background), and their
        # outermost output pixels also see, through the shrink filter, a row's worth beyond the crop.
        assert diff.float().mean() < 3, key
        assert diff[:, 1:-1, 1:-1].max() < 40 and diff.max() < 64, key


def test_eval_dataset_and_rows_kept_as_cut_match_within_rounding(data, tmp_path):
    _, _, samples = data
    cache = prepare_cache(samples, SIZE, tmp_path, side=512, fmt="raw")  # no row shrunk: whole pixels
    ref, cached = HandCropDataset(samples, SIZE, train=False), cache.dataset(samples[3:], train=False)
    assert len(cached) == len(samples) - 3
    for i in range(len(cached)):
        # The same filter on the same pixels; PIL's fixed-point weights round differently by at most 1.
        diff = (ref[i + 3]["image"].int() - cached[(i, 99)]["image"].int()).abs()
        assert diff.max() <= 1, i


@pytest.mark.parametrize("levels", [1, 2])
def test_jpeg_rows_the_default_are_close(data, tmp_path, levels):
    _, _, samples = data
    cache = prepare_cache(samples, SIZE, tmp_path, levels=levels)
    assert (cache.settings.fmt, cache.settings.quality) == ("jpeg", 90)
    ref, cached = HandCropDataset(samples, SIZE, train=True), cache.dataset(train=True)
    for key in _keys(len(samples)):
        # JPEG's loss on top of resampling, on small noisy frames (its worst case): at most 5 levels of 255
        # on average per crop (4.7 measured at the default quality 90, 3.6 at 95); BENCHMARKS.md gives the
        # figure on full-HD frames.
        assert (ref[key]["image"].int() - cached[key]["image"].int()).abs().float().mean() < 5, key


def test_two_levels_hold_at_most_the_bytes_of_one_in_concentric_rows(data, tmp_path):
    _, _, samples = data
    one = prepare_cache(samples, SIZE, tmp_path / "one", fmt="raw", levels=1)
    two = prepare_cache(samples, SIZE, tmp_path / "two", fmt="raw", levels=2)
    assert one.rows.shape == (len(samples), 1, 6) and two.rows.shape == (len(samples), 2, 6)
    assert (one.settings.side, two.settings.side) == (128, 91)  # 2 x 64 and sqrt(2) x 64
    # At most the bytes of one level per sample: 2 x 91^2 ~ 128^2 pixels.
    per_sample = two.rows[:, :, 1].sum(axis=1, where=two.rows[:, :, 5] == [0, 1])
    assert per_sample.max() <= 2 * 91 * 91 * 3 <= 1.02 * one.rows[:, 0, 1].max()
    # Level 0 is the square at scale sqrt(2), level 1 the one at 2, around the same box in the same frame...
    inner, outer = two.rows[:, 0], two.rows[:, 1]
    assert np.array_equal(inner[:, 2:4], outer[:, 2:4]) and (outer[:, 5] == 1).all()
    shrunk = outer[:, 4] == 91
    assert shrunk.any() and (~shrunk).any()
    assert (inner[shrunk, 5] == 0).all() and (inner[shrunk, 0] != outer[shrunk, 0]).all()
    # ... except where the outer one was kept as cut: the inner level shares its row.
    assert np.array_equal(inner[~shrunk], outer[~shrunk])


def test_reused_when_unchanged_new_key_when_changed(data, tmp_path):
    out, info, samples = data
    first = prepare_cache(samples, SIZE, tmp_path)
    stamp = (first.folder / "index.json").stat().st_mtime_ns
    again = prepare_cache(samples, SIZE, tmp_path)
    assert again.folder == first.folder and (again.folder / "index.json").stat().st_mtime_ns == stamp
    assert prepare_cache(samples, (32, 32), tmp_path).folder != first.folder  # another side
    assert prepare_cache(samples, SIZE, tmp_path, max_scale=1.5).folder != first.folder
    assert prepare_cache(samples[1:], SIZE, tmp_path).folder != first.folder
    ann = sorted(os.listdir(info["annotations"]))[0]
    ann = os.path.join(info["annotations"], ann)
    assert prepare_cache(samples, SIZE, tmp_path, annotation_files=[ann]).folder != first.folder
    image = samples[0].image
    original = Path(image).read_bytes()
    try:
        with open(image, "ab") as fh:  # an image rewritten: its byte size changes
            fh.write(b"\0")
        assert prepare_cache(samples, SIZE, tmp_path).folder != first.folder
    finally:
        Path(image).write_bytes(original)


def test_a_change_of_targets_alone_gives_a_new_cache(data, tmp_path):
    """A target with no annotation file changes no sample (its index is past the others), but it changes the
    class list the samples index into, and the notes: a cache keyed without targets would be reused."""
    _, info, samples = data
    more = [*TARGETS, "ok"]
    found = read_annotations(info["annotations"], info["dataset"], more)
    assert found.samples == samples and found.notes  # same samples; "no annotation file for ['ok']"
    first = prepare_cache(samples, SIZE, tmp_path, targets=TARGETS)
    other = prepare_cache(found.samples, SIZE, tmp_path, targets=more, notes=found.notes)
    assert other.folder != first.folder and other.origin == "prepared" and other.notes == found.notes
    renamed = ["dislike", *TARGETS[1:]]  # index 0 now means another gesture
    assert prepare_cache(samples, SIZE, tmp_path, targets=renamed).folder not in (first.folder, other.folder)
    assert prepare_cache(samples, SIZE, tmp_path, targets=TARGETS).origin == "reused"


def test_key_does_not_depend_on_where_the_dataset_lives(data, tmp_path):
    out, info, samples = data
    moved = tmp_path / "elsewhere"
    shutil.copytree(out, moved)  # a copy on another machine: other paths, other mtimes
    copied = read_annotations(moved / "annotations", moved / "images", TARGETS).samples
    first = prepare_cache(samples, SIZE, tmp_path / "cache")
    again = prepare_cache(copied, SIZE, tmp_path / "cache")
    assert again.folder == first.folder and again.origin == "reused"
    assert torch.equal(first.dataset(train=True)[(2, 5)]["image"], again.dataset(train=True)[(2, 5)]["image"])


@pytest.mark.parametrize("damage", ["truncate", "flip", "stale_key", "no_index"])
def test_corrupt_or_stale_cache_is_rebuilt(data, tmp_path, damage, caplog):
    _, _, samples = data
    folder = prepare_cache(samples, SIZE, tmp_path).folder
    crops, index = folder / "crops.bin", folder / "index.json"
    good = crops.read_bytes()
    if damage == "truncate":
        crops.write_bytes(good[: len(good) // 2])
    elif damage == "flip":
        crops.write_bytes(good[:100] + bytes([good[100] ^ 0xFF]) + good[101:])
    elif damage == "stale_key":
        meta = json.loads(index.read_text())
        index.write_text(json.dumps({**meta, "key": "0" * 64}))
    else:
        index.unlink()
    rebuilt = prepare_cache(samples, SIZE, tmp_path)
    assert rebuilt.folder == folder and crops.read_bytes() == good
    assert damage == "no_index" or "rebuilding" in caplog.text


def test_unreadable_image_gives_none_and_is_counted(data, tmp_path):
    _, _, samples = data
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not a jpeg")
    bad = [type(samples[0])(str(broken), samples[0].box, 1, 0, "u")]
    cache = prepare_cache(samples[:2] + bad, SIZE, tmp_path / "c")
    assert cache.unreadable == 1
    ds = CachedCropDataset(cache, cache.samples, train=True)
    assert ds[(2, 5)] is None and ds[(0, 5)] is not None


def test_workers_build_the_same_cache(data, tmp_path):
    _, _, samples = data
    one = prepare_cache(samples[:6], SIZE, tmp_path / "a")
    two = prepare_cache(samples[:6], SIZE, tmp_path / "b", workers=2)
    assert (one.folder / "crops.bin").read_bytes() == (two.folder / "crops.bin").read_bytes()
    assert np.array_equal(one.rows, two.rows)


@pytest.mark.parametrize(
    ("fmt", "hint"),
    [("raw", "dataset.cache_format=jpeg"), ("jpeg", "a lower dataset.cache_quality (now 90)")],
)
def test_a_cache_that_would_not_fit_is_refused_before_anything_is_written(
    data, tmp_path, monkeypatch, fmt, hint
):
    import collections

    from handgesture.data import cache as cache_module
    from handgesture.data.cache import CacheWontFitError, estimated_size

    _, _, samples = data
    usage = collections.namedtuple("usage", "total used free")
    monkeypatch.setattr(cache_module.shutil, "disk_usage", lambda path: usage(10 * 2**30, 0, 100 * 2**20))
    with pytest.raises(CacheWontFitError) as info:
        prepare_cache(samples, SIZE, tmp_path / "cache", fmt=fmt)
    message = str(info.value)
    assert str(tmp_path / "cache" / "crops-") in message and "0.10 GiB free" in message
    assert hint in message and "needs about" in message
    assert list((tmp_path / "cache").iterdir()) == []  # no rows, no temp folder
    raw = cache_module.cache_settings(SIZE, fmt="raw", levels=1)
    assert estimated_size(len(samples), raw) >= len(samples) * 128 * 128 * 3


def test_preparing_in_process_leaves_the_caller_s_thread_count_alone(data, tmp_path):
    _, _, samples = data
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        prepare_cache(samples[:4], SIZE, tmp_path / "c")  # no workers: the rows are cut in this process
        assert torch.get_num_threads() == 2  # training after it keeps its threads (speed, and the same bits)
    finally:
        torch.set_num_threads(threads)


def test_training_reads_crops_from_the_cache(tiny_config, tmp_path):
    from handgesture.training import run_training

    result = run_training(tiny_config(f"dataset.cache_dir={tmp_path / 'cache'}", "train_params.epochs=1"))
    assert result.epochs == 1 and 0.0 <= result.metrics["gesture/f1_score"] <= 1.0
    assert any((tmp_path / "cache").rglob("index.json"))


def _race(samples, cache_dir) -> tuple[list, list]:
    """Two threads prepare the same cache at the same moment: their origins, and any errors."""
    import threading

    start, results, errors = threading.Barrier(2), [], []

    def prepare():
        start.wait()
        try:
            results.append(prepare_cache(samples, (32, 32), cache_dir).origin)
        except Exception as exc:  # noqa: BLE001 (any error is the failure this test looks for)
            errors.append(exc)

    threads = [threading.Thread(target=prepare) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    return results, errors


def test_two_preparers_of_one_cache_never_collide(data, tmp_path):
    _, _, samples = data
    for round_ in range(6):  # the race lost 1 time in 30 before the lock (ENOTEMPTY)
        results, errors = _race(samples, tmp_path / f"cache-{round_}")
        assert not errors and sorted(results) == ["prepared", "reused"], (errors, results)


def test_a_split_looks_up_its_rows_whether_it_is_the_whole_cache_a_part_or_a_stranger(data, tmp_path):
    _, _, samples = data
    cache = prepare_cache(samples, SIZE, tmp_path)
    whole = cache.dataset(list(cache.samples), train=False)  # an equal list, not the cache's own
    assert np.array_equal(whole.rows, cache.rows)
    reordered = list(reversed(cache.samples))
    assert np.array_equal(cache.dataset(reordered, train=False).rows, cache.rows[::-1])
    part = cache.dataset(cache.samples[2:5], train=False)
    assert np.array_equal(part.rows, cache.rows[2:5])
    stranger = msgspec.structs.replace(cache.samples[0], image="elsewhere.jpg")
    with pytest.raises(ValueError, match=r"1 samples are not in crop cache .*elsewhere\.jpg"):
        cache.dataset([*cache.samples[1:], stranger], train=False)
