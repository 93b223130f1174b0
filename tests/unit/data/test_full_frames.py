"""Full-frame data (`model.full_frame=true`): v2's label rule, the letterbox, and the frame cache."""

from pathlib import Path

import pytest
import torch
from PIL import Image

from handgesture.data.annotations import read_annotations
from handgesture.data.cache import prepare_cache
from handgesture.data.cached_dataset import CachedFrameDataset
from handgesture.data.full_frames import WHOLE_FRAME, FullFrameDataset, full_frame_label, letterbox
from handgesture.data.geometry import letterbox_size
from handgesture.labels import UNKNOWN_HAND
from tests.unit.data.test_annotations import write_dataset
from tests.unit.data.test_hagrid_v2 import v2_entry

TARGETS = ["hand_heart", "like", "no_gesture"]
BOX, OTHER = [0.1, 0.1, 0.2, 0.2], [0.6, 0.6, 0.2, 0.2]


@pytest.mark.parametrize(
    ("labels", "folder", "expected"),
    [
        (["like"], "like", "like"),
        (["no_gesture", "like", "fist"], "like", "like"),  # the first label that is not no_gesture
        (["no_gesture", "no_gesture"], "like", None),  # nobody makes a gesture: dropped
        ([], "like", None),
        (["like"], "no_gesture", "no_gesture"),  # the no_gesture folder labels its images
    ],
)
def test_v2s_label_rule(labels, folder, expected):
    assert full_frame_label(labels, folder) == expected


def test_one_sample_per_image_the_whole_frame_labelled_by_v2s_rule(tmp_path):
    hearts = ["hand_heart", "hand_heart"]
    ann, data = write_dataset(tmp_path, {
        "hand_heart": {"a": v2_entry([BOX, OTHER], hearts, [[0.1, 0.1, 0.7, 0.7]] * 2, hearts)},
        "like": {
            "b": v2_entry([BOX, OTHER], ["no_gesture", "like"]),
            "c": v2_entry([BOX, OTHER], ["no_gesture", "no_gesture"]),  # dropped
            "d": v2_entry([BOX], ["fist"]),  # not a target: skipped and noted
        },
        "no_gesture": {"e": v2_entry([BOX], ["no_gesture"])},
    })  # fmt: skip
    found = read_annotations(ann, data, TARGETS, full_frame=True)
    assert [(s.image.rsplit("/", 2)[-2:], s.gesture) for s in found.samples] == [
        (["hand_heart", "a.jpg"], 0),  # one sample for the image, not one per box
        (["like", "b.jpg"], 1),
        (["no_gesture", "e.jpg"], 2),
    ]
    assert {s.box for s in found.samples} == {WHOLE_FRAME}
    assert {s.leading_hand for s in found.samples} == {UNKNOWN_HAND}
    assert any("1 images outside the no_gesture folder" in note for note in found.notes)
    assert any("'fist': 1" in note for note in found.notes)
    assert len(read_annotations(ann, data, TARGETS).samples) == 6  # crop mode: one per box, as before


def test_v1_data_takes_the_same_rule(tmp_path):
    entry = {"bboxes": [BOX, OTHER], "labels": ["no_gesture", "like"], "leading_hand": "left", "user_id": "u"}
    ann, data = write_dataset(tmp_path, {"like": {"a": entry}})
    (sample,) = read_annotations(ann, data, TARGETS, full_frame=True).samples
    assert (sample.gesture, sample.box, sample.leading_hand) == (1, WHOLE_FRAME, UNKNOWN_HAND)


@pytest.mark.parametrize(
    ("frame", "size", "fitted"),
    [((1920, 1080), (224, 224), (126, 224)), ((90, 160), (64, 64), (64, 36)), ((50, 50), (32, 48), (32, 32))],
)
def test_letterbox_keeps_the_aspect_and_centres_on_v2s_grey(frame, size, fitted):
    width, height = frame
    assert letterbox_size(width, height, size) == fitted
    image = letterbox(torch.full((3, height, width), 7, dtype=torch.uint8), size)
    assert image.shape == (3, *size) and image.dtype == torch.uint8
    top, left = (size[0] - fitted[0]) // 2, (size[1] - fitted[1]) // 2
    inside = torch.zeros(size, dtype=torch.bool)
    inside[top : top + fitted[0], left : left + fitted[1]] = True
    assert (image[:, inside] == 7).all() and (image[:, ~inside] == 144).all()


def test_letterbox_of_bad_sizes_names_them():
    with pytest.raises(ValueError, match="image_size must be two positive"):
        letterbox_size(10, 10, (0, 32))
    with pytest.raises(ValueError, match="frame size must be positive"):
        letterbox_size(0, 10, (32, 32))


@pytest.fixture
def frames(tmp_path):
    """Three blotchy frames of two shapes, one sample each."""
    torch.manual_seed(0)
    files = {"a": (40, 30), "b": (30, 40), "c": (40, 30)}
    ann, data = write_dataset(tmp_path, {"like": {i: v2_entry([BOX], ["like"]) for i in files}})
    for image_id, (w, h) in files.items():
        # grey blotches: JPEG's chroma subsampling would blur coloured ones on a frame this small
        pixels = torch.randint(0, 256, (h // 4, w // 4, 1), dtype=torch.uint8).expand(-1, -1, 3).numpy()
        blotches = Image.fromarray(pixels).resize((w, h), Image.Resampling.BILINEAR)
        blotches.save(data / "like" / f"{image_id}.png", format="PNG")
        (data / "like" / f"{image_id}.png").rename(data / "like" / f"{image_id}.jpg")  # lossless pixels
    return read_annotations(ann, data, TARGETS, full_frame=True).samples


@pytest.mark.parametrize("fmt", ["raw", "jpeg"])
def test_the_frame_cache_holds_the_letterboxed_frames(frames, tmp_path, fmt):
    cache = prepare_cache(frames, (24, 24), tmp_path / "cache", fmt=fmt, full_frame=True)
    cached, direct = cache.dataset(train=True), FullFrameDataset(frames, (24, 24))
    assert isinstance(cached, CachedFrameDataset) and cache.folder.name.startswith("frames-")
    for i in range(len(frames)):
        got, want = cached[(i, 99)], direct[i]
        assert got["image"].shape == (3, 24, 24) and got["gesture"] == want["gesture"] == 1
        error = (got["image"].int() - want["image"].int()).abs().float().mean()
        assert error == 0 if fmt == "raw" else error < 4, error  # JPEG's loss


def test_frames_are_decoded_once_at_prepare_never_when_read(frames, tmp_path, monkeypatch):
    import handgesture.data.cache_build as cache_build

    decoded = []
    read_frame = cache_build.read_frame
    monkeypatch.setattr(cache_build, "read_frame", lambda path: decoded.append(path) or read_frame(path))
    cache = prepare_cache(frames, (24, 24), tmp_path / "cache", full_frame=True)
    assert sorted(decoded) == sorted(s.image for s in frames)
    for s in frames:  # the source frames are gone: an epoch reads the cache alone
        Path(s.image).unlink()
    dataset = cache.dataset(train=True)
    assert all(dataset[(i, i)] is not None for i in range(len(dataset)))


def test_crop_and_frame_caches_of_the_same_data_never_meet(frames, tmp_path):
    crops = prepare_cache(frames, (24, 24), tmp_path / "cache")
    whole = prepare_cache(frames, (24, 24), tmp_path / "cache", full_frame=True)
    assert crops.key != whole.key and crops.folder != whole.folder
    assert crops.folder.name.startswith("crops-") and not crops.settings.full_frame
    other_size = prepare_cache(frames, (24, 32), tmp_path / "cache", full_frame=True)
    assert other_size.key != whole.key  # the letterboxed frame's [H, W] is part of the key
    assert prepare_cache(frames, (24, 24), tmp_path / "cache", full_frame=True).origin == "reused"
