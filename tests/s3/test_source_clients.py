"""Data reads on S3 (a real moto server) share this process's client across `sources.activate` calls while
nothing that decides who it talks as, or where, has changed; a changed secret gets a new client, which the
server refuses. An archive's tail read (its size from the same answer) copes with an empty object."""

import json
import uuid
import zipfile

import boto3
import pytest
from botocore.stub import Stubber

from handgesture.data import reading, sources
from handgesture.data.archives import ArchiveError
from handgesture.errors import StorageCredentialsError
from handgesture.storage import S3Settings
from handgesture.storage.s3 import S3Store
from tests.archive_data import upload
from tests.s3.test_s3_training import _iam


@pytest.fixture
def archive(s3_bucket, s3_env, tmp_path):
    with zipfile.ZipFile(tmp_path / "frames.zip", "w") as out:
        out.writestr("call/a.jpg", b"frame a")
    yield upload(s3_env.client(), s3_bucket, "data/frames.zip", tmp_path / "frames.zip")
    sources.activate()


def _client(bucket: str):
    return reading._state.places.store(bucket).client


def test_a_task_reuses_the_client_of_the_task_before_with_the_same_settings(archive, s3_bucket, s3_env):
    settings = S3Settings(endpoint_url=s3_env.endpoint_url)
    sources.activate(settings)
    first = _client(s3_bucket)
    sources.activate(settings)  # a new task: central directories forgotten, the client kept
    assert _client(s3_bucket) is first and not reading._state.indexes
    sources.activate(S3Settings(endpoint_url=s3_env.endpoint_url, max_retries=1))
    assert _client(s3_bucket) is not first  # other retry settings: another client


def _user(server, bucket: str) -> tuple[str, str]:
    """An IAM user's keys that may read ``bucket`` (moto checks them once `auth_enforced`)."""
    iam, user = _iam(server), f"reader-{uuid.uuid4().hex[:8]}"
    iam.create_user(UserName=user)
    statement = {
        "Effect": "Allow",
        "Action": "s3:*",
        "Resource": [f"arn:aws:s3:::{bucket}", f"arn:aws:s3:::{bucket}/*"],
    }
    policy = {"Version": "2012-10-17", "Statement": [statement]}
    iam.put_user_policy(UserName=user, PolicyName="read", PolicyDocument=json.dumps(policy))
    key = iam.create_access_key(UserName=user)["AccessKey"]
    return key["AccessKeyId"], key["SecretAccessKey"]


def test_a_changed_secret_gets_a_new_client_which_the_server_refuses(archive, s3_bucket, s3_env, monkeypatch):
    access_key, secret = _user(s3_env, s3_bucket)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", access_key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", secret)
    settings = S3Settings(endpoint_url=s3_env.endpoint_url)
    sources.activate(settings)
    with s3_env.auth_enforced():
        assert sources.dataset_files(archive, ["call"])  # the user's own keys: read
        first = _client(s3_bucket)
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not-the-secret")
        sources.activate(settings)
        with pytest.raises(StorageCredentialsError) as info:
            sources.dataset_files(archive, ["call"])
    assert _client(s3_bucket) is not first and "not-the-secret" not in str(info.value)


def test_an_empty_object_named_as_an_archive_is_a_corrupt_archive(s3_bucket, s3_env):
    s3_env.client().put_object(Bucket=s3_bucket, Key="data/empty.zip", Body=b"")
    sources.activate(S3Settings(endpoint_url=s3_env.endpoint_url))
    try:
        with pytest.raises(ArchiveError, match="central directory is missing or corrupt"):
            sources.dataset_files(f"s3://{s3_bucket}/data/empty.zip", ["call"])
    finally:
        sources.activate()


def test_a_tail_of_an_empty_object_is_empty_where_s3_answers_invalid_range():
    """AWS answers a suffix range on an empty object with 416 InvalidRange (moto with the empty body)."""
    store = S3Store("bucket", "", S3Settings())
    client = boto3.client("s3", region_name="us-east-1", aws_access_key_id="a", aws_secret_access_key="b")
    with Stubber(client) as stub:
        stub.add_client_error("get_object", service_error_code="InvalidRange", http_status_code=416)
        store._client = client
        assert store.get_tail("data/empty.zip", 100) == (b"", 0)
