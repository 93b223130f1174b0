"""Retention is enforced in S3 too: only the last N and best K checkpoints stay in the bucket."""

import json

import boto3
import pytest

from handgesture.training import run_training

pytestmark = pytest.mark.s3


def test_retention_deletes_old_checkpoints_from_the_bucket(s3_env, s3_bucket, tiny_config):
    config = tiny_config(
        f"storage.uri=s3://{s3_bucket}/runs",
        f"storage.endpoint_url={s3_env.endpoint_url}",
        "train_params.epochs=1",
        "checkpoint.every_n_steps=2",
        "checkpoint.keep_last=2",
        "checkpoint.keep_best=1",
    )
    run_training(config, run_name="kept")
    client = boto3.client("s3", endpoint_url=s3_env.endpoint_url)
    prefix = "runs/demo/kept/"
    listed = client.list_objects_v2(Bucket=s3_bucket, Prefix=prefix + "checkpoints/")["Contents"]
    in_bucket = sorted(o["Key"].removeprefix(prefix) for o in listed)
    manifest = json.loads(client.get_object(Bucket=s3_bucket, Key=prefix + "manifest.json")["Body"].read())
    assert in_bucket == sorted(e["key"] for e in manifest["checkpoints"])
    assert 2 <= len(in_bucket) <= 3  # last 2, plus the best when it is older


def test_a_resumed_run_never_deletes_the_checkpoint_it_continued_from_in_s3(s3_env, s3_bucket, tiny_config):
    settings = [f"storage.uri=s3://{s3_bucket}/runs", f"storage.endpoint_url={s3_env.endpoint_url}"]
    keep_one = [*settings, "checkpoint.keep_last=1", "checkpoint.keep_best=0", "storage.run_name=continued"]
    first = run_training(tiny_config("train_params.epochs=1", *keep_one))
    run_training(tiny_config("train_params.epochs=3", *keep_one))
    client = boto3.client("s3", endpoint_url=s3_env.endpoint_url)
    key = first.last_checkpoint.removeprefix(f"s3://{s3_bucket}/")
    client.head_object(Bucket=s3_bucket, Key=key)  # still there: protected although keep_last=1
