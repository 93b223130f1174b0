"""Hand-crop dataset, epoch sampler, skipping collate and loader wiring, on tiny frames."""

import logging
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from handgesture.data.annotations import Sample
from handgesture.data.dataset import (
    EpochSampler,
    HandCropDataset,
    collate_skipping,
    make_loader,
    sample_seed,
)

GREEN, RED = (0, 200, 0), (220, 0, 0)


def write_frame(path, size=(40, 30), rect=None, colour=RED) -> str:
    """A green W x H frame with an optional coloured rectangle (x0, y0, x1, y1), saved as a JPEG."""
    pixels = np.zeros((size[1], size[0], 3), np.uint8)
    pixels[:] = GREEN
    if rect:
        x0, y0, x1, y1 = rect
        pixels[y0:y1, x0:x1] = colour
    Image.fromarray(pixels).save(path, quality=100)
    return str(path)


def norm_box(rect, size=(40, 30)):
    x0, y0, x1, y1 = rect
    return (x0 / size[0], y0 / size[1], (x1 - x0) / size[0], (y1 - y0) / size[1])


def near(pixel: torch.Tensor, colour, tol: int = 40) -> bool:
    return bool((pixel.int() - torch.tensor(colour)).abs().max() <= tol)


@pytest.fixture
def frames(tmp_path):
    rect = (10, 5, 20, 25)  # 10 x 20 px red box centred at (15, 15)
    path = write_frame(tmp_path / "a.jpg", rect=rect)
    return [Sample(path, norm_box(rect), gesture=g, leading_hand=g % 2, user_id="u") for g in range(6)]


def test_output_shape_dtype_and_labels(frames):
    item = HandCropDataset(frames, (16, 24), train=True)[(3, 99)]
    assert item["image"].shape == (3, 16, 24) and item["image"].dtype == torch.uint8
    assert (item["gesture"], item["leading_hand"]) == (3, 1)


def test_eval_crop_is_the_centred_square_at_scale_one(frames):
    image = HandCropDataset(frames, (20, 20), train=False)[0]["image"]
    # Crop (5, 5, 25, 25): columns 5..14 of the crop are the red box, the rest is green background.
    assert near(image[:, 10, 10], RED) and near(image[:, 2, 7], RED)
    assert near(image[:, 10, 2], GREEN) and near(image[:, 10, 17], GREEN)


def test_int_key_and_eval_seed_key_give_scale_one(frames):
    eval_ds, train_ds = HandCropDataset(frames, (20, 20), False), HandCropDataset(frames, (20, 20), True)
    assert torch.equal(eval_ds[0]["image"], eval_ds[(0, 12345)]["image"])
    assert torch.equal(eval_ds[0]["image"], train_ds[0]["image"])


def test_same_key_same_tensor_and_seed_changes_training_crop(frames):
    ds = HandCropDataset(frames, (20, 20), train=True)
    assert torch.equal(ds[(1, 7)]["image"], ds[(1, 7)]["image"])
    images = [ds[(1, seed)]["image"] for seed in range(6)]
    assert any(not torch.equal(images[0], other) for other in images[1:])


def test_crop_past_the_frame_edge_is_zero_padded(tmp_path):
    rect = (0, 10, 6, 20)  # 6 x 10 box on the left edge: crop (-2, 10, 8, 20) sticks out 2 px
    sample = Sample(write_frame(tmp_path / "e.jpg", rect=rect), norm_box(rect), 0, 0, "u")
    image = HandCropDataset([sample], (10, 10), train=False)[0]["image"]
    assert image[:, :, :2].eq(0).all()
    assert near(image[:, 5, 4], RED) and near(image[:, 5, 9], GREEN)


def test_non_square_image_size_pads_both_sides(frames):
    image = HandCropDataset(frames, (20, 30), train=False)[0]["image"]
    assert image[:, :, :5].eq(0).all() and image[:, :, 25:].eq(0).all()
    assert near(image[:, 10, 15], RED)


@pytest.mark.parametrize("kind", ["missing", "truncated", "garbage", "empty"])
def test_unreadable_image_returns_none_and_collate_skips_it(tmp_path, frames, caplog, kind):
    bad = tmp_path / f"{kind}.jpg"
    good_bytes = Path(frames[0].image).read_bytes()
    contents = {"truncated": good_bytes[: len(good_bytes) // 2], "garbage": b"not a jpeg" * 5, "empty": b""}
    if kind in contents:
        bad.write_bytes(contents[kind])
    samples = [frames[0], Sample(str(bad), frames[0].box, 1, 0, "u")]
    ds = HandCropDataset(samples, (8, 8), train=False)
    with caplog.at_level(logging.WARNING, logger="handgesture.data.dataset"):
        assert ds[1] is None
    assert str(bad) in caplog.text
    batch = collate_skipping([ds[0], ds[1]])
    assert batch["skipped"] == 1 and batch["image"].shape == (1, 3, 8, 8)
    assert batch["gesture"].tolist() == [0]


def test_collate_of_only_unreadable_items_is_empty_with_right_dtypes():
    batch = collate_skipping([None, None])
    assert batch["skipped"] == 2
    assert batch["image"].shape == (0, 3, 0, 0) and batch["image"].dtype == torch.uint8
    assert batch["gesture"].shape == (0,) and batch["gesture"].dtype == torch.long
    assert batch["leading_hand"].shape == (0,) and batch["leading_hand"].dtype == torch.long


def test_collate_stacks_items():
    items = [
        {
            "image": torch.full((3, 4, 4), i, dtype=torch.uint8),
            "gesture": i,
            "leading_hand": 1,
            "index": 7 + i,
        }
        for i in range(3)
    ]
    batch = collate_skipping([items[0], None, *items[1:]])
    assert batch["image"].shape == (3, 3, 4, 4) and batch["image"][2].eq(2).all()
    assert batch["gesture"].tolist() == [0, 1, 2] and batch["leading_hand"].dtype == torch.long
    assert batch["index"].tolist() == [7, 8, 9]  # positions in the dataset, past the unreadable one
    assert batch["skipped"] == 1


def test_sampler_is_a_seeded_permutation_per_epoch():
    sampler = EpochSampler(50, seed=3, shuffle=True)
    sampler.set_epoch(2)
    first = list(sampler)
    again = EpochSampler(50, seed=3, shuffle=True)
    again.set_epoch(2)
    assert first == list(sampler) == list(again)
    assert sorted(i for i, _ in first) == list(range(50))
    expected = torch.randperm(50, generator=torch.Generator().manual_seed(3 + 2)).tolist()
    assert [i for i, _ in first] == expected
    sampler.set_epoch(3)
    assert [i for i, _ in sampler] != expected
    assert len({s for _, s in first}) == 50


def test_sampler_without_shuffle_is_in_order():
    sampler = EpochSampler(5, seed=0, shuffle=False)
    sampler.set_epoch(4)
    assert [i for i, _ in sampler] == [0, 1, 2, 3, 4]
    assert [s for _, s in sampler] == [sample_seed(0, 4, p) for p in range(5)]


@pytest.mark.parametrize("start", [0, 1, 17, 29, 30])
def test_resume_yields_exactly_the_tail_of_the_epoch(start):
    full = EpochSampler(30, seed=11, shuffle=True)
    full.set_epoch(5)
    resumed = EpochSampler(30, seed=11, shuffle=True)
    resumed.set_epoch(5, start=start)
    assert list(resumed) == list(full)[start:]
    assert len(resumed) == 30 - start


def _ranks(num, world, batch, start=0, epoch=5):
    shards = []
    for rank in range(world):
        sampler = EpochSampler(num, seed=11, shuffle=True, rank=rank, world=world, batch_size=batch)
        sampler.set_epoch(epoch, start=start)
        shards.append(list(sampler))
    return shards


def test_ranks_split_each_global_batch_of_one_permutation():
    full = EpochSampler(30, seed=11, shuffle=True)
    full.set_epoch(5)
    everything = list(full)  # the global order: indices and seeds by global position
    zero, one = _ranks(30, world=2, batch=4)
    assert len(zero) == len(one) == 12  # 3 whole global batches of 8; the last 6 positions wait
    for step in range(3):
        assert zero[4 * step : 4 * step + 4] == everything[8 * step : 8 * step + 4]
        assert one[4 * step : 4 * step + 4] == everything[8 * step + 4 : 8 * step + 8]


@pytest.mark.parametrize(("world", "batch", "start"), [(2, 4, 8), (3, 2, 12), (2, 3, 0)])
def test_another_world_size_continues_at_the_global_position(world, batch, start):
    # `start` samples were trained by some world size; this one takes over from there.
    full = EpochSampler(30, seed=11, shuffle=True)
    full.set_epoch(5)
    everything = list(full)
    shards = _ranks(30, world, batch, start=start)
    taken = sorted(item for shard in shards for item in shard)
    steps = (30 - start) // (world * batch)
    assert taken == sorted(everything[start : start + steps * world * batch])


def test_evaluation_shards_cover_the_split_once():
    shards = []
    for rank in range(3):
        sampler = EpochSampler(10, seed=0, shuffle=False, rank=rank, world=3)
        shards.append([i for i, _ in sampler])
    assert shards == [[0, 3, 6, 9], [1, 4, 7], [2, 5, 8]]


def test_sampler_rejects_start_outside_the_epoch():
    with pytest.raises(ValueError, match="start"):
        EpochSampler(10, seed=0, shuffle=True).set_epoch(0, start=11)


def test_sample_seed_depends_on_seed_epoch_and_position():
    seeds = {sample_seed(s, e, p) for s in range(3) for e in range(3) for p in range(3)}
    assert len(seeds) == 27 and all(0 <= s < 2**63 for s in seeds)


def _batches(dataset, workers: int):
    sampler = EpochSampler(len(dataset), seed=5, shuffle=True)
    sampler.set_epoch(1, start=2)
    loader = make_loader(dataset, batch_size=4, sampler=sampler, num_workers=workers, prefetch_factor=2,
                         drop_last=True)  # fmt: skip
    return list(loader)


def test_workers_give_the_same_batches_as_the_main_process(tmp_path):
    samples = []
    for k in range(12):
        rect = (4 + k, 4, 14 + k, 20)
        path = write_frame(tmp_path / f"{k}.jpg", rect=rect, colour=(20 * k, 0, 255 - 20 * k))
        samples.append(Sample(path, norm_box(rect), k % 3, k % 2, "u"))
    dataset = HandCropDataset(samples, (12, 12), train=True)
    main, workers = _batches(dataset, 0), _batches(dataset, 2)
    assert len(main) == len(workers) == 2  # 10 positions left, drop_last
    for a, b in zip(main, workers, strict=True):
        assert torch.equal(a["image"], b["image"]) and torch.equal(a["gesture"], b["gesture"])
        assert a["skipped"] == b["skipped"] == 0
