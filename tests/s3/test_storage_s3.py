"""S3Store against a real moto_server over HTTP (no in-process mocks)."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import time
import uuid
from pathlib import Path

import pytest

from handgesture.errors import StorageError
from handgesture.storage import MiB, S3Settings, cached_download, open_store, s3_clients
from tests.s3_fixtures import MotoServer, free_port

pytestmark = pytest.mark.s3

FAST_FAIL = {"max_retries": 2, "connect_timeout": 1.0, "read_timeout": 3.0}


def settings(server: MotoServer, **kw) -> S3Settings:
    return S3Settings(endpoint_url=server.endpoint_url, **kw)


def count_calls(store, operation: str) -> list:
    calls: list = []
    store.client.meta.events.register(f"before-call.s3.{operation}", lambda **kw: calls.append(1))
    return calls


def test_the_prefix_is_a_real_key_prefix_in_the_bucket(s3_env: MotoServer, s3_bucket: str):
    store = open_store(f"s3://{s3_bucket}/runs/", settings(s3_env))
    assert store.root == f"s3://{s3_bucket}/runs" and store.local_path("a/b.bin") is None
    store.put_bytes(b"hello", "a/b.bin")
    raw = s3_env.client().get_object(Bucket=s3_bucket, Key="runs/a/b.bin")["Body"].read()
    assert raw == b"hello"
    other = open_store(f"s3://{s3_bucket}/runs2", settings(s3_env))
    other.put_bytes(b"x", "not-mine")  # shares the string prefix "runs" but not the folder
    assert store.list() == ["a/b.bin"] and other.list() == ["not-mine"]
    root = open_store(f"s3://{s3_bucket}", settings(s3_env))
    assert root.root == f"s3://{s3_bucket}" and "runs2/not-mine" in root.list()


def test_large_objects_use_concurrent_multipart(s3_env: MotoServer, s3_bucket: str, tmp_path: Path):
    cfg = settings(s3_env, multipart_threshold=5 * MiB, multipart_chunksize=5 * MiB, max_concurrency=4)
    store = open_store(f"s3://{s3_bucket}/big", cfg)
    parts = count_calls(store, "UploadPart")
    ranged_gets = count_calls(store, "GetObject")
    src = tmp_path / "big.bin"
    src.write_bytes(os.urandom(12 * MiB))
    store.put_file(src, "big.bin")
    etag = s3_env.client().head_object(Bucket=s3_bucket, Key="big/big.bin")["ETag"]
    assert etag.strip('"').endswith("-3") and len(parts) == 3  # a 3-part multipart upload
    assert store.get_file("big.bin", tmp_path / "out.bin").read_bytes() == src.read_bytes()
    assert len(ranged_gets) == 3
    store.put_bytes(src.read_bytes(), "bytes.bin")
    assert len(parts) == 6 and store.get_bytes("bytes.bin") == src.read_bytes()


def test_cached_download_reuses_verified_copy(s3_env: MotoServer, s3_bucket: str, tmp_path: Path):
    store = open_store(f"s3://{s3_bucket}/runs", settings(s3_env))
    data = os.urandom(300_000)
    digest = hashlib.sha256(data).hexdigest()
    store.put_bytes(data, "r1/e1.pt")
    gets = count_calls(store, "GetObject")
    cache = tmp_path / "cache"
    first = cached_download(store, "r1/e1.pt", cache, digest)
    assert first == cache / s3_bucket / "runs/r1/e1.pt" and first.read_bytes() == data
    stat = first.stat()
    assert cached_download(store, "r1/e1.pt", cache, digest) == first
    assert len(gets) == 1  # second call: no download
    assert (first.stat().st_ino, first.stat().st_mtime_ns) == (stat.st_ino, stat.st_mtime_ns)

    first.write_bytes(b"torn" + data[4:])  # corrupt the cached copy: it is downloaded again
    assert cached_download(store, "r1/e1.pt", cache, digest).read_bytes() == data
    assert len(gets) == 2


def test_cached_download_without_checksum_follows_etag(s3_env: MotoServer, s3_bucket: str, tmp_path: Path):
    store = open_store(f"s3://{s3_bucket}", settings(s3_env))
    store.put_bytes(b"v1", "latest.pt")
    gets = count_calls(store, "GetObject")
    assert cached_download(store, "latest.pt", tmp_path).read_bytes() == b"v1"
    assert cached_download(store, "latest.pt", tmp_path).read_bytes() == b"v1"
    assert len(gets) == 1
    store.put_bytes(b"v2", "latest.pt")  # overwritten remotely: the stale copy is replaced
    assert cached_download(store, "latest.pt", tmp_path).read_bytes() == b"v2"
    assert len(gets) == 2


def test_store_works_inside_a_running_event_loop(s3_env: MotoServer, s3_bucket: str):
    async def main():
        store = open_store(f"s3://{s3_bucket}/loop", settings(s3_env))
        store.put_bytes(b"x", "k")
        return store.get_bytes("k"), store.list(), store.exists("k")

    assert asyncio.run(main()) == (b"x", ["k"], True)


# -- saved Prefect blocks ---------------------------------------------------------------------------------


@pytest.fixture
def no_env_credentials(s3_env: MotoServer, monkeypatch):
    """Only a block can supply credentials: the default chain finds nothing."""
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(name)


def test_saved_blocks(prefect_harness, s3_env, s3_bucket, no_env_credentials, tmp_path):
    from prefect_aws import AwsCredentials, MinIOCredentials, S3Bucket

    name = f"test-{uuid.uuid4().hex[:8]}"
    endpoint = {"endpoint_url": s3_env.endpoint_url}
    creds = AwsCredentials(
        aws_access_key_id=s3_env.access_key,
        aws_secret_access_key=s3_env.secret_key,
        region_name=s3_env.region,
        aws_client_parameters=endpoint,
    )
    creds.save(name, overwrite=True)
    S3Bucket(bucket_name=s3_bucket, bucket_folder="ignored", credentials=creds).save(name, overwrite=True)
    MinIOCredentials(
        minio_root_user=s3_env.access_key,
        minio_root_password=s3_env.secret_key,
        aws_client_parameters=endpoint,
    ).save(name, overwrite=True)

    by_bucket = open_store(f"s3://{s3_bucket}/runs", S3Settings(block=f"s3-bucket/{name}"))
    by_bucket.put_bytes(b"via bucket block", "a.bin")
    for kind in ("aws-credentials", "minio-credentials"):
        store = open_store(f"s3://{s3_bucket}/runs", S3Settings(block=f"{kind}/{name}"))
        assert store.get_bytes("a.bin") == b"via bucket block"
    assert by_bucket.list() == ["a.bin"]  # the URI's prefix, not the block's folder, addresses keys

    async def in_loop():  # Block.load returns a coroutine in a running loop unless forced sync
        return open_store(f"s3://{s3_bucket}/runs", S3Settings(block=f"s3-bucket/{name}")).list()

    assert asyncio.run(in_loop()) == ["a.bin"]

    with pytest.raises(StorageError, match="is for bucket"):
        open_store("s3://some-other-bucket", S3Settings(block=f"s3-bucket/{name}"))
    with pytest.raises(StorageError, match="aws-credentials/does-not-exist"):
        open_store(f"s3://{s3_bucket}", S3Settings(block="aws-credentials/does-not-exist"))
    with pytest.raises(StorageError, match="expected one of s3-bucket/<name>"):
        open_store(f"s3://{s3_bucket}", S3Settings(block="gcs-bucket/x"))


def test_wrong_credentials_in_saved_block(prefect_harness, s3_env, s3_bucket, caplog):
    from prefect_aws import AwsCredentials

    name = f"bad-{uuid.uuid4().hex[:8]}"
    secret = f"block-secret-{uuid.uuid4().hex}"
    AwsCredentials(
        aws_access_key_id="AKIABADBADBAD",
        aws_secret_access_key=secret,
        aws_client_parameters={"endpoint_url": s3_env.endpoint_url},
    ).save(name, overwrite=True)
    caplog.set_level(logging.DEBUG)
    store = open_store(f"s3://{s3_bucket}", S3Settings(block=f"aws-credentials/{name}"))
    with s3_env.auth_enforced(), pytest.raises(StorageError) as info:
        store.put_bytes(b"x", "k")
    assert f"aws-credentials/{name}" in str(info.value)
    assert secret not in str(info.value) and secret not in caplog.text


# -- errors -----------------------------------------------------------------------------------------------


def test_wrong_credentials_from_default_chain(s3_env, s3_bucket, monkeypatch, caplog):
    secret = f"env-secret-{uuid.uuid4().hex}"
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAWRONGWRONG")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", secret)
    caplog.set_level(logging.DEBUG)
    store = open_store(f"s3://{s3_bucket}", settings(s3_env))
    with s3_env.auth_enforced(), pytest.raises(StorageError) as info:
        store.get_bytes("k")
    message = str(info.value)
    assert "default AWS credential chain (environment/profile/instance role)" in message
    assert s3_env.endpoint_url in message
    assert "botocore" in caplog.text  # the debug logs were captured, and still hold no secret
    assert secret not in message and secret not in caplog.text


def test_no_credentials_at_all(s3_env, s3_bucket, no_env_credentials):
    with pytest.raises(StorageError, match="default AWS credential chain"):
        open_store(f"s3://{s3_bucket}", settings(s3_env)).exists("k")


def test_missing_bucket_names_bucket_and_endpoint(s3_env):
    store = open_store("s3://no-such-bucket-here/runs", settings(s3_env))
    for op in (lambda: store.put_bytes(b"x", "k"), lambda: store.exists("k"), store.list):
        with pytest.raises(StorageError) as info:
            op()
        assert "no-such-bucket-here" in str(info.value) and s3_env.endpoint_url in str(info.value)


def test_unreachable_endpoint_retries_with_backoff_then_fails(s3_env, monkeypatch):
    endpoint = f"http://127.0.0.1:{free_port()}"  # nothing listens here
    attempts: list = []
    real_make_client = s3_clients.make_client

    def counting_make_client(creds, s3):
        client = real_make_client(creds, s3)
        client.meta.events.register("before-send.s3", lambda **kw: attempts.append(time.monotonic()))
        return client

    monkeypatch.setattr(s3_clients, "make_client", counting_make_client)
    store = open_store("s3://bucket/runs", S3Settings(endpoint_url=endpoint, **FAST_FAIL))
    start = time.monotonic()
    with pytest.raises(StorageError) as info:
        store.put_bytes(b"x", "k")
    assert time.monotonic() - start < 20
    assert endpoint in str(info.value) and "3 attempts" in str(info.value)
    assert len(attempts) == 3


def test_server_stop_and_restart(s3_env: MotoServer, s3_bucket: str):
    """Runs last in this file: restarting moto loses its in-memory buckets."""
    store = open_store(f"s3://{s3_bucket}", settings(s3_env, **FAST_FAIL))
    store.put_bytes(b"x", "k")
    s3_env.stop()
    try:
        with pytest.raises(StorageError, match="could not reach S3 endpoint"):
            store.get_bytes("k")
    finally:
        s3_env.start()
    s3_env.client().create_bucket(Bucket=s3_bucket)
    store.put_bytes(b"y", "k")  # the same store recovers once the server is back
    assert store.get_bytes("k") == b"y"


def test_an_endpoint_that_never_answers_fails_fast_and_is_not_taken_for_an_outage(s3_env):
    import socket
    import threading

    from handgesture.errors import InputError, StorageNotAnsweringError

    listener = socket.create_server(("127.0.0.1", 0))
    held: list = []
    threading.Thread(target=lambda: held.extend(listener.accept() for _ in range(8)), daemon=True).start()
    endpoint = f"http://127.0.0.1:{listener.getsockname()[1]}"  # accepts, reads, never answers
    store = open_store("s3://bucket/runs", S3Settings(endpoint_url=endpoint, max_retries=1, read_timeout=1.0))
    start = time.monotonic()
    with pytest.raises(StorageNotAnsweringError) as info:
        store.exists("k")
    assert time.monotonic() - start < 15
    assert endpoint in str(info.value) and "did not answer" in str(info.value)
    assert isinstance(info.value, InputError)  # a retried task would only hang again
    defaults = S3Settings()
    assert (defaults.max_retries + 1) * defaults.read_timeout <= 60  # about a minute with the defaults
    listener.close()
