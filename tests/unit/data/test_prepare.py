"""The prepare-data step's inputs: synthetic data only where the demo asks for it and never over a user's
folder, and dataset paths that no source reads refused, not turned into folder names."""

import shutil
from pathlib import Path

import pytest

from handgesture.config import load_config
from handgesture.data.prepare import prepare_data
from handgesture.data.synthetic import generate_synthetic
from handgesture.errors import DataError, InputError

DEMO = str(Path(__file__).resolve().parents[3] / "configs" / "demo.yaml")
V2 = str(Path(DEMO).with_name("hagrid_v2.yaml"))
TARGETS = "dataset.targets=[call,fist,no_gesture]"
SMALL = ["synthetic.per_class=1", "synthetic.users=2", "synthetic.frame_size=[64,64]", TARGETS]


def _files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


@pytest.fixture
def real_dataset(tmp_path):
    """A user's dataset: images/<gesture>/*.jpg and annotations/<gesture>.json."""
    return generate_synthetic(
        tmp_path / "hagrid", per_class=2, users=2, frame_size=(64, 64), targets=["call"]
    )


@pytest.mark.parametrize("generate", [None, "true"], ids=["default-config", "generation-on"])
def test_a_mistyped_annotations_path_never_writes_into_the_users_dataset(real_dataset, tmp_path, generate):
    typo = str(Path(real_dataset["annotations"]).with_name("anotations"))
    overrides = [f"dataset.annotations={typo}", f"dataset.dataset={real_dataset['dataset']}", TARGETS]
    overrides.append(f"dataset.cache_dir={tmp_path / 'cache'}")
    if generate:
        overrides.append(f"synthetic.generate_if_missing={generate}")
    before = _files(tmp_path)
    with pytest.raises(DataError, match="anotations") as info:
        prepare_data(load_config(None, overrides))
    assert "\n" not in str(info.value)
    assert _files(tmp_path) == before  # not one synthetic file, not an empty folder


def test_generation_never_writes_next_to_images_that_are_there(real_dataset, tmp_path):
    """The generator's own layout (<folder>/annotations, <folder>/images), but the annotations are missing
    (not unpacked yet, say) while the images are there: an error naming the missing folder, no writes."""
    shutil.rmtree(real_dataset["annotations"])
    overrides = [
        f"dataset.annotations={real_dataset['annotations']}",
        f"dataset.dataset={real_dataset['dataset']}",
    ]
    before = _files(tmp_path)
    with pytest.raises(DataError, match=f"{real_dataset['annotations']} does not exist.*has content"):
        prepare_data(load_config(DEMO, [*overrides, *SMALL, f"dataset.cache_dir={tmp_path / 'cache'}"]))
    assert _files(tmp_path) == before


def test_generation_refuses_a_layout_it_would_not_fill(tmp_path):
    """Generation writes <folder>/annotations and <folder>/images: other names would be filled elsewhere."""
    overrides = [
        f"dataset.annotations={tmp_path / 'd' / 'ann'}",
        f"dataset.dataset={tmp_path / 'd' / 'images'}",
    ]
    with pytest.raises(DataError, match="ann"):
        prepare_data(load_config(DEMO, [*overrides, *SMALL, f"dataset.cache_dir={tmp_path / 'c'}"]))
    assert _files(tmp_path) == []


def test_the_demo_config_still_generates_its_data_on_first_use(tmp_path):
    data = tmp_path / "synthetic"
    overrides = [f"dataset.annotations={data / 'annotations'}", f"dataset.dataset={data / 'images'}", *SMALL]
    prepared = prepare_data(load_config(DEMO, [*overrides, f"dataset.cache_dir={tmp_path / 'cache'}"]))
    assert prepared.splits["train"].samples > 0 and (data / "images" / "call").is_dir()


def _v2_paths(data: Path) -> list[str]:
    """configs/hagrid_v2.yaml's dataset paths, under `data` instead of data/synthetic-v2."""
    v2 = load_config(V2)
    return [
        f"dataset.{key}={getattr(v2.dataset, key).replace('data/synthetic-v2', str(data))}"
        for key in ("annotations", "val_annotations", "test_annotations", "dataset")
    ]


def test_the_v2_config_generates_v2_as_it_ships_and_prepares_its_three_splits(tmp_path):
    data = tmp_path / "synthetic-v2"
    overrides = [*_v2_paths(data), *SMALL, "synthetic.generate_if_missing=true"]
    prepared = prepare_data(load_config(V2, [*overrides, f"dataset.cache_dir={tmp_path / 'cache'}"]))
    assert sorted(p.name for p in data.iterdir()) == ["hagrid_annotations", "hagrid_dataset"]
    assert sorted(prepared.splits) == ["test", "train", "val"]
    assert all(split.samples > 0 for split in prepared.splits.values())
    assert prepared.splits["val"].annotations == str(data / "hagrid_annotations" / "val")


def test_v2_generation_never_writes_beside_a_users_own_splits(tmp_path):
    """v2's layout with the training annotations missing but a validation split there: no writes."""
    data = tmp_path / "hagrid"
    (data / "hagrid_annotations" / "val").mkdir(parents=True)
    (data / "hagrid_annotations" / "val" / "call.json").write_text("{}")
    overrides = [*_v2_paths(data), *SMALL, "synthetic.generate_if_missing=true"]
    before = _files(tmp_path)
    with pytest.raises(DataError, match="hagrid_annotations has content"):
        prepare_data(load_config(V2, [*overrides, f"dataset.cache_dir={tmp_path / 'cache'}"]))
    assert _files(tmp_path) == before


def test_the_default_config_does_not_generate_and_the_demo_does():
    assert load_config(None).synthetic.generate_if_missing is False
    assert load_config(DEMO).synthetic.generate_if_missing is True


@pytest.mark.parametrize("scheme", ["gs", "http", "https", "az"])
@pytest.mark.parametrize("key", ["annotations", "dataset", "val_annotations", "test_annotations"])
def test_a_dataset_uri_no_source_reads_is_refused_naming_the_key_and_writes_nothing(
    tmp_path, monkeypatch, key, scheme
):
    monkeypatch.chdir(tmp_path)  # where a URI read as a relative path would have been created
    uri = f"{scheme}://bucket/hagrid/{key}"
    with pytest.raises(InputError) as info:
        prepare_data(load_config(DEMO, [f"dataset.{key}={uri}", *SMALL, "dataset.cache_dir=cache"]))
    message = str(info.value)
    assert f"dataset.{key}" in message and uri in message and "expected a local path" in message
    assert "\n" not in message
    assert _files(tmp_path) == []


@pytest.mark.parametrize("chain", ["simplecache::s3://bucket/x.zip", "zip://a::zip://b::s3://bucket/x.zip"])
def test_a_chain_through_anything_but_one_archive_is_refused(tmp_path, monkeypatch, chain):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(InputError, match=r"dataset\.dataset=.*only zip://<folder>::<archive> chains"):
        prepare_data(load_config(DEMO, [f"dataset.dataset={chain}", *SMALL, "dataset.cache_dir=cache"]))
    assert _files(tmp_path) == []


def test_a_cache_dir_uri_is_refused_not_turned_into_a_folder(tmp_path, monkeypatch, real_dataset):
    monkeypatch.chdir(tmp_path)
    paths = [
        f"dataset.annotations={real_dataset['annotations']}",
        f"dataset.dataset={real_dataset['dataset']}",
    ]
    with pytest.raises(InputError, match=r"dataset\.cache_dir=s3://bucket/cache.*local folder"):
        prepare_data(load_config(DEMO, [*paths, *SMALL, "dataset.cache_dir=s3://bucket/cache"]))
    assert not (tmp_path / "s3:").exists()


def test_credentials_in_a_dataset_uri_are_not_printed(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    uri = "s3://AKIAEXAMPLE:hunter2@bucket/hagrid/images"
    with pytest.raises(InputError) as info:
        prepare_data(load_config(DEMO, [f"dataset.dataset={uri}", *SMALL, "dataset.cache_dir=cache"]))
    assert "hunter2" not in str(info.value) and "AKIAEXAMPLE" not in str(info.value)
