"""Crop caches shared through S3 (a real moto_server): a fresh worker downloads instead of preparing."""

from __future__ import annotations

import hashlib
import json
import logging

import pytest

from handgesture.data.prepare import prepare_data

# Imports Prefect, whose logging set-up replaces the root logger's handlers: at collection, before caplog
# attaches its own, not in the middle of a test (where caplog would then see nothing).
from handgesture.storage import s3 as _s3  # noqa: F401
from tests.s3_fixtures import MotoServer, free_port

pytestmark = pytest.mark.s3


def _keys(s3: MotoServer, bucket: str) -> list[str]:
    listing = s3.client().list_objects_v2(Bucket=bucket, Prefix="caches/")
    return sorted(item["Key"] for item in listing.get("Contents", []))


def test_prepared_cache_goes_to_s3_and_a_fresh_worker_downloads_it(tiny_config, s3_env, s3_bucket, tmp_path):
    share = [f"dataset.cache_uri=s3://{s3_bucket}/caches", f"storage.endpoint_url={s3_env.endpoint_url}"]
    first = prepare_data(tiny_config(*share, f"dataset.cache_dir={tmp_path / 'worker-1'}")).splits["train"]
    assert first.origin == "prepared"
    name = first.cache.rsplit("/", 1)[-1]
    files = ("crops.bin", "index.json", "rows.npy", "samples.json")
    assert _keys(s3_env, s3_bucket) == [f"caches/{name}/{f}" for f in files]

    fresh = prepare_data(tiny_config(*share, f"dataset.cache_dir={tmp_path / 'worker-2'}")).splits["train"]
    assert fresh.origin == "downloaded" and fresh.bytes == first.bytes
    assert fresh.samples == first.samples and fresh.cache.endswith(name)


def test_unreachable_share_prepares_locally_with_a_warning(tiny_config, s3_env, tmp_path, caplog):
    dead = f"http://127.0.0.1:{free_port()}"  # nothing listens here
    config = tiny_config(
        "dataset.cache_uri=s3://nowhere/caches",
        f"storage.endpoint_url={dead}",
        "storage.max_retries=0",
        f"dataset.cache_dir={tmp_path / 'cache'}",
    )
    with caplog.at_level(logging.WARNING):
        summary = prepare_data(config).splits["train"]
    assert summary.origin == "prepared"
    assert "s3://nowhere/caches" in caplog.text and "preparing locally" in caplog.text


def test_a_forged_self_consistent_copy_on_s3_is_refused(tiny_config, s3_env, s3_bucket, tmp_path, caplog):
    """Labels rewritten to one class, the index's sha256 updated to match: not our data, so not used."""
    share = [f"dataset.cache_uri=s3://{s3_bucket}/caches", f"storage.endpoint_url={s3_env.endpoint_url}"]
    first = prepare_data(tiny_config(*share, f"dataset.cache_dir={tmp_path / 'worker-1'}")).splits["train"]
    prefix, client = f"caches/{first.cache.rsplit('/', 1)[-1]}", s3_env.client()
    columns = json.loads(client.get_object(Bucket=s3_bucket, Key=f"{prefix}/samples.json")["Body"].read())
    forged = json.dumps({**columns, "gestures": [0] * len(columns["gestures"])}).encode()
    index = json.loads(client.get_object(Bucket=s3_bucket, Key=f"{prefix}/index.json")["Body"].read())
    index["files"]["samples.json"] = {"size": len(forged), "sha256": hashlib.sha256(forged).hexdigest()}
    client.put_object(Bucket=s3_bucket, Key=f"{prefix}/samples.json", Body=forged)
    client.put_object(Bucket=s3_bucket, Key=f"{prefix}/index.json", Body=json.dumps(index).encode())

    with caplog.at_level(logging.WARNING):
        fresh = prepare_data(tiny_config(*share, f"dataset.cache_dir={tmp_path / 'worker-2'}")).splits[
            "train"
        ]
    assert fresh.origin == "prepared" and f"s3://{s3_bucket}/caches" in caplog.text
    assert "failed verification" in caplog.text
    body = client.get_object(Bucket=s3_bucket, Key=f"{prefix}/samples.json")["Body"].read()
    assert json.loads(body) == columns  # the forged copy was replaced by ours
