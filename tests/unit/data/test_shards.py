"""A cache prepared in shards reads as the one-process cache does: same samples, same crops; a finished part
is kept by a prepare run again, and a missing one is noticed."""

import json
import os
from pathlib import Path

import pytest
import torch

from handgesture.config import load_config
from handgesture.data.cache_layout import crops_files, part_name
from handgesture.data.prepare import open_split, prepare_data
from handgesture.data.prepare_sharded import finish_prepare, plan_prepare, prepare_shard
from handgesture.data.shards import build_part, shard_ranges
from handgesture.data.synthetic import generate_synthetic
from handgesture.errors import DataError

TARGETS = ["call", "fist", "like"]


@pytest.fixture(scope="module")
def small_dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("shards")
    return generate_synthetic(root, per_class=4, users=3, frame_size=(96, 72), targets=TARGETS, seed=5)


def _config(dataset, cache_dir, *more):
    return load_config(
        None,
        [
            f"dataset.annotations={dataset['annotations']}",
            f"dataset.dataset={dataset['dataset']}",
            f"dataset.cache_dir={cache_dir}",
            f"dataset.targets=[{','.join(TARGETS)}]",
            "dataset.image_size=[32,32]",
            "train_params.num_workers=0",
            *more,
        ],
    )


def _sharded(config, workers=2):
    plan = plan_prepare(config, workers)
    for shard in plan.shards(config):
        prepare_shard(config, shard)
    return plan, finish_prepare(config, plan)


def test_shard_ranges_cover_every_sample_once_at_most_shard_size_and_one_per_worker():
    assert shard_ranges(10, 4) == [(0, 4), (4, 8), (8, 10)]
    assert shard_ranges(10, 100, workers=3) == [(0, 4), (4, 8), (8, 10)]
    assert shard_ranges(2, 100, workers=4) == [(0, 1), (1, 2)]
    assert shard_ranges(0, 5) == []


def test_a_sharded_cache_reads_as_one_cache_identical_to_the_one_process_cache(small_dataset, tmp_path):
    config = _config(small_dataset, tmp_path / "sharded", "prepare.shard_size=5")
    plan, prepared = _sharded(config)
    split = prepared.splits["train"]
    index = json.loads((tmp_path / "sharded" / split.cache.split("/")[-1] / "index.json").read_text())
    assert len(crops_files(index)) == len(plan.splits["train"].ranges) > 2
    one = prepare_data(_config(small_dataset, tmp_path / "one")).splits["train"]
    assert (split.key, split.samples, split.origin) == (one.key, one.samples, "prepared")
    sharded, single = open_split(config, split), open_split(config, one)
    assert sharded.samples == single.samples
    a, b = sharded.dataset(sharded.samples, False, [32, 32]), single.dataset(single.samples, False, [32, 32])
    for i in range(len(a)):
        assert torch.equal(a[(i, 7)]["image"], b[(i, 7)]["image"])
    # prepared again, in one process: the sharded cache is found and reused as it is
    assert prepare_data(config).splits["train"].origin == "reused"


def test_a_prepare_run_again_keeps_finished_parts_and_redoes_only_the_lost_one(small_dataset, tmp_path):
    config = _config(small_dataset, tmp_path / "c", "prepare.shard_size=5")
    plan = plan_prepare(config, 1)
    shards = plan.shards(config)
    for shard in shards[1:]:  # the first shard's worker was lost
        build_part(shard)
    kept = {shard.part: os.stat(shard.part / "crops.bin").st_ino for shard in shards[1:]}
    with pytest.raises(DataError, match="part 00000000-00000005 is missing"):
        finish_prepare(config, plan)
    plan = plan_prepare(config, 1)  # the retry: a prepare planned again
    for shard in plan.shards(config):
        prepare_shard(config, shard)
    assert {part: os.stat(part / "crops.bin").st_ino for part in kept} == kept  # not rewritten
    assert finish_prepare(config, plan).splits["train"].origin == "prepared"


def test_a_torn_part_is_not_taken_as_finished(small_dataset, tmp_path):
    """A part whose crops.bin lost its tail (a worker killed while the file was replaced, a disk fault) is
    built again, not assembled into the cache."""
    config = _config(small_dataset, tmp_path / "c", "prepare.shard_size=5")
    plan, _ = _sharded(config)
    split = plan.splits["train"]
    torn = Path(split.folder) / "parts" / part_name(*split.ranges[1]) / "crops.bin"
    torn.write_bytes(torn.read_bytes()[:-100])
    (Path(split.folder) / "index.json").unlink()  # the cache is incomplete: planned again
    plan, prepared = _sharded(config)
    assert prepared.splits["train"].origin == "prepared"
    assert open_split(config, prepared.splits["train"]).samples


def test_a_sharded_cache_is_shared_with_its_parts_and_fetched_whole(small_dataset, tmp_path):
    share = tmp_path / "share"
    config = _config(small_dataset, tmp_path / "a", "prepare.shard_size=5", f"dataset.cache_uri={share}")
    _, prepared = _sharded(config)
    name = Path(prepared.splits["train"].cache).name
    assert len(list((share / name / "parts").glob("*/crops.bin"))) > 2
    fresh = _config(small_dataset, tmp_path / "b", "prepare.shard_size=5", f"dataset.cache_uri={share}")
    split = prepare_data(fresh).splits["train"]
    assert split.origin == "downloaded" and split.key == prepared.splits["train"].key
    data = open_split(fresh, split)
    assert data.dataset(data.samples, False, [32, 32])[len(data.samples) - 1]["image"].shape == (3, 32, 32)
