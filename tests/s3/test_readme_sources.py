"""The README's "Data in archives or S3" commands, run as printed against moto: the tutorial's two zips train
with their two URIs alone, HaGRID's per-gesture zips and annotations zip prepare; then evaluate and
predict --boxes read the same archives. Only the bucket is swapped for the test's, and test-only settings
(the endpoint, tiny sizes, storage and cache in tmp) are appended. No frame lands on local disk."""

import json
from pathlib import Path

import pytest

from tests.archive_data import per_gesture_zips, tutorial_zips, upload, zip_folder
from tests.readme import commands, substitute

pytestmark = pytest.mark.slow
TARGETS = "dataset.targets=[call,fist,like]"


def test_the_data_in_archives_section_runs_as_printed(
    prefect_harness, s3_bucket, s3_env, tmp_path, monkeypatch
):
    from handgesture_cli.main import main as handgesture

    from handgesture.data.synthetic import generate_synthetic
    from tests.commands import train

    data = generate_synthetic(
        tmp_path / "src", per_class=6, users=4, frame_size=(96, 72), targets=["call", "fist", "like"]
    )
    client = s3_env.client()
    zips = tutorial_zips(data, tmp_path / "zips")
    upload(client, s3_bucket, "root/data/subsample.zip", zips["dataset"])
    upload(client, s3_bucket, "root/data/subsample-annotations.zip", zips["annotations"])
    upload(client, s3_bucket, "hagrid", per_gesture_zips(data["dataset"], tmp_path / "hagrid"))
    ann = zip_folder(data["annotations"], tmp_path / "ann_train_val.zip", "ann_train_val")
    upload(client, s3_bucket, "hagrid/ann_train_val.zip", ann)
    for folder in ("src", "zips", "hagrid"):  # from here on, the only frames are in the bucket
        _remove(tmp_path / folder)

    work, home = tmp_path / "work", tmp_path / "home"
    work.mkdir()
    home.mkdir()
    monkeypatch.chdir(work)
    monkeypatch.setenv("HOME", str(home))
    test_only = [
        TARGETS,
        f"storage.endpoint_url={s3_env.endpoint_url}",
        f"storage.uri={work / 'runs'}",
        f"dataset.cache_dir={work / 'cache'}",
        "dataset.image_size=[32,32]",
        "model.name=MobileNetV3_small",
        "train_params.epochs=1",
        "train_params.train_batch_size=8",
        "train_params.num_workers=0",
    ]
    tutorial, hagrid, sharded = [
        substitute(c, {"my-bucket": s3_bucket}) for c in commands("Straight from the archives or S3")
    ]
    assert tutorial[:2] == ["python", "flows/train.py"] and len(tutorial) == 4  # its two URIs, nothing else
    summary = train(tutorial[2:] + test_only)
    assert summary.epochs == 1 and summary.best_checkpoint
    assert hagrid[:2] == ["handgesture", "prepare"] and handgesture(hagrid[1:] + test_only) == 0
    # The same on 2 local Dask workers, into a cache folder of its own: the same cache, built in shards.
    assert sharded == [*hagrid, "prepare.dask=local:2"]
    in_shards = [*test_only, f"dataset.cache_dir={work / 'cache-sharded'}"]
    assert handgesture(sharded[1:] + in_shards) == 0
    assert sorted(p.name for p in (work / "cache").iterdir()) == sorted(
        p.name for p in (work / "cache-sharded").iterdir()
    )

    chain = f"zip://ann_subsample/like.json::s3://{s3_bucket}/root/data/subsample-annotations.zip"
    boxes = ["--boxes", chain, "--endpoint-url", s3_env.endpoint_url]
    image = tmp_path / "one.jpg"  # predict's images are local files; its boxes come from the archive
    image.write_bytes(_first_frame(s3_env, s3_bucket))
    assert handgesture(["predict", summary.best_checkpoint, str(image), *boxes]) == 0
    image.unlink()
    evaluate = ["evaluate", summary.best_checkpoint, "--split", "val", "--out", str(work / "eval")]
    assert handgesture(evaluate + [*hagrid[2:], *test_only]) == 0
    assert json.loads((work / "eval" / "report.json").read_text())["samples"] > 0
    written = [p for root in (tmp_path, home, work) for p in root.rglob("*") if p.suffix.lower() == ".jpg"]
    assert written == []


def _first_frame(s3_env, bucket: str) -> bytes:
    import io
    import zipfile

    archive = s3_env.client().get_object(Bucket=bucket, Key="hagrid/like.zip")["Body"].read()
    with zipfile.ZipFile(io.BytesIO(archive)) as zf:
        return zf.read(zf.namelist()[0])


def _remove(folder: Path) -> None:
    import shutil

    shutil.rmtree(folder)
