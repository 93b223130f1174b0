"""Training, flows, resume and model loading with checkpoints in S3, against a real moto_server over HTTP.

Trained runs are shared between tests (module-level cache): the first test that needs one trains it.
The server-outage test is last: restarting moto loses every bucket.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import logging
import re
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import torch

from handgesture.errors import (
    BucketNotFoundError,
    CheckpointError,
    StorageCredentialsError,
    StorageError,
    UnsupportedSchemeError,
)
from handgesture.storage import S3Settings
from handgesture.training import run_training
from tests.s3_fixtures import MotoServer
from tests.tiny import tiny_dotlist

pytestmark = pytest.mark.s3

FLOW_EXPERIMENT = "s3-flow"
AWS_CREDENTIAL_VARS = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION")


# -- helpers ----------------------------------------------------------------------------------------------


def split_s3(uri: str) -> tuple[str, str]:
    assert uri.startswith("s3://"), uri
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    return bucket, key


def s3_keys(server: MotoServer, bucket: str, prefix: str = "") -> list[str]:
    pages = server.client().get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    return sorted(obj["Key"] for page in pages for obj in page.get("Contents", []))


def s3_read(server: MotoServer, uri: str) -> bytes:
    bucket, key = split_s3(uri)
    return server.client().get_object(Bucket=bucket, Key=key)["Body"].read()


def s3_checkpoint(server: MotoServer, uri: str) -> dict:
    return torch.load(io.BytesIO(s3_read(server, uri)), weights_only=True)


def s3_manifest(server: MotoServer, run_uri: str) -> dict:
    return json.loads(s3_read(server, f"{run_uri}/manifest.json"))


def remove_env_credentials(monkeypatch) -> None:
    """Only a saved block can supply credentials now: the default AWS chain finds none."""
    import boto3

    for name in AWS_CREDENTIAL_VARS:
        monkeypatch.delenv(name, raising=False)
    assert boto3.Session().get_credentials() is None


def save_credentials_block(server: MotoServer, key_id: str, secret: str, prefix: str = "creds") -> str:
    from prefect_aws import AwsCredentials

    name = f"{prefix}-{uuid.uuid4().hex[:8]}"
    AwsCredentials(
        aws_access_key_id=key_id,
        aws_secret_access_key=secret,
        region_name=server.region,
        aws_client_parameters={"endpoint_url": server.endpoint_url},
    ).save(name, overwrite=True)
    return name


def iam_access_key(server: MotoServer) -> tuple[str, str]:
    """A real key pair of a new IAM user allowed everything: what moto accepts once auth is enforced."""
    iam = _iam(server)
    user = f"trainer-{uuid.uuid4().hex[:8]}"
    iam.create_user(UserName=user)
    policy = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}
    iam.put_user_policy(UserName=user, PolicyName="all", PolicyDocument=json.dumps(policy))
    key = iam.create_access_key(UserName=user)["AccessKey"]
    return key["AccessKeyId"], key["SecretAccessKey"]


def _iam(server: MotoServer):
    import boto3

    return boto3.client(
        "iam",
        endpoint_url=server.endpoint_url,
        aws_access_key_id=server.access_key,
        aws_secret_access_key=server.secret_key,
        region_name=server.region,
    )


@contextmanager
def captured_logs(*names: str) -> Iterator[io.StringIO]:
    """Every record of these loggers at DEBUG, wherever Prefect's logging set-up moves root handlers."""
    text = io.StringIO()
    handler = logging.StreamHandler(text)
    handler.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))
    loggers = [logging.getLogger(name) for name in names]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.addHandler(handler)
        logger.setLevel(logging.DEBUG)
    try:
        yield text
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.removeHandler(handler)
            logger.setLevel(level)


def checkpoints_artifact(flow_run_id) -> list[dict]:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    async def read():
        async with get_client() as client:
            return await client.read_artifacts(
                artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id]))
            )

    return asyncio.run(read())


# -- shared runs ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def shared() -> dict:
    """Runs trained once per module, filled in by the first test that needs each."""
    return {}


@pytest.fixture
def bucket(s3_env: MotoServer, shared: dict) -> str:
    """One bucket for this module's shared runs (env credentials set for the test by `s3_env`)."""
    if "bucket" not in shared:
        shared["bucket"] = s3_env.create_bucket("train")
    return shared["bucket"]


@pytest.fixture(autouse=True)
def private_cache(monkeypatch, tmp_path):
    """Downloads of resumed checkpoints go to this test's folder, not a shared /tmp cache."""
    monkeypatch.setenv("HANDGESTURE_CACHE", str(tmp_path / "cache"))


@pytest.fixture
def direct_run(tiny_config, s3_env: MotoServer, bucket: str, shared: dict) -> dict:
    """`run_training` into S3 for 2 epochs, with what the bucket held at the end of each epoch."""
    if "direct" not in shared:
        seen: dict[int, dict] = {}
        run_prefix = "runs/direct/direct-1/"

        def on_epoch(progress, metrics):
            # Uploads run in the background: wait (bounded) until the epoch's manifest is in the bucket; its
            # checkpoint and event files went up before it (uploads keep commit order).
            wanted = f"{run_prefix}checkpoints/e{progress.epoch:04d}-"
            deadline = time.monotonic() + 60
            while True:
                keys = s3_keys(s3_env, bucket, run_prefix)
                manifest_key = f"{run_prefix}manifest.json"
                if manifest_key in keys:
                    manifest = json.loads(s3_read(s3_env, f"s3://{bucket}/{manifest_key}"))
                    if any(
                        e["key"].startswith(wanted.removeprefix(run_prefix)) for e in manifest["checkpoints"]
                    ):
                        break
                assert time.monotonic() < deadline, f"epoch {progress.epoch} not in S3 after 60 s: {keys}"
                time.sleep(0.2)
            seen[progress.epoch] = {"keys": [k.removeprefix(run_prefix) for k in keys], "manifest": manifest}

        config = tiny_config(
            f"storage.uri=s3://{bucket}/runs",
            f"storage.endpoint_url={s3_env.endpoint_url}",
            "storage.experiment=direct",
            "storage.run_name=direct-1",
        )
        result = run_training(config, on_epoch=on_epoch)
        shared["direct"] = {"result": result, "seen": seen}
    return shared["direct"]


@pytest.fixture
def flow_run(prefect_harness, tiny_dataset, s3_env: MotoServer, bucket: str, shared: dict) -> dict:
    """The training flow into S3 for 2 epochs: its result and flow run id."""
    if "flow" not in shared:
        from flows.train import train_hand_gesture_classifier

        overrides = tiny_dotlist(tiny_dataset) + [
            f"storage.endpoint_url={s3_env.endpoint_url}",
            f"storage.experiment={FLOW_EXPERIMENT}",
            "train_params.epochs=2",
        ]
        state = train_hand_gesture_classifier(
            config="configs/demo.yaml",
            overrides=overrides,
            storage=f"s3://{bucket}/runs",
            return_state=True,
        )
        assert state.is_completed(), state.message
        shared["flow"] = {
            "result": state.result(),
            "id": state.state_details.flow_run_id,
            "overrides": overrides,
        }
    return shared["flow"]


# -- 1. uploads during training ---------------------------------------------------------------------------


def test_checkpoints_reach_s3_at_each_epoch_not_only_at_the_end(direct_run, bucket):
    seen, result = direct_run["seen"], direct_run["result"]
    assert sorted(seen) == [1, 2]
    after_first = seen[1]["keys"]
    epoch1 = [k for k in after_first if re.fullmatch(r"checkpoints/e0001-s\d{8}\.pth", k)]
    assert len(epoch1) == 1, after_first
    assert {"best_model.pth", "manifest.json", "config.yaml"} <= set(after_first)
    assert any(k.startswith("tensorboard/") and "tfevents" in k for k in after_first), after_first
    assert not any(k.startswith("checkpoints/e0002") for k in after_first)
    manifest = seen[1]["manifest"]
    assert [e["key"] for e in manifest["checkpoints"]] == epoch1
    assert manifest["best"]["source"] == epoch1[0]
    assert any(k.startswith("checkpoints/e0002") for k in seen[2]["keys"])

    run_uri = f"s3://{bucket}/runs/direct/direct-1"
    assert result.run_uri == run_uri
    assert result.last_checkpoint.startswith(f"{run_uri}/checkpoints/e0002-")
    assert result.best_checkpoint == f"{run_uri}/best_model.pth"
    assert (result.epochs, result.global_step) == (
        2,
        seen[2]["manifest"]["checkpoints"][-1]["global_step"],
    )


# -- 2. the flow into S3 ----------------------------------------------------------------------------------


def test_flow_run_writes_verified_checkpoints_to_s3(flow_run, s3_env: MotoServer, bucket: str):
    result = flow_run["result"]
    for uri in (result.run_uri, result.best_checkpoint, result.last_checkpoint):
        assert uri.startswith(f"s3://{bucket}/runs/{FLOW_EXPERIMENT}/"), result
    assert result.epochs == 2 and result.resumed_from is None

    manifest = s3_manifest(s3_env, result.run_uri)
    assert manifest["flow_run_id"] == str(flow_run["id"])
    assert [e["epoch"] for e in manifest["checkpoints"]] == [1, 2]
    assert manifest["checkpoints"][-1]["uri"] == result.last_checkpoint
    for entry in [*manifest["checkpoints"], manifest["best"]]:
        data = s3_read(s3_env, entry["uri"])
        assert (hashlib.sha256(data).hexdigest(), len(data)) == (entry["sha256"], entry["size"]), entry["uri"]
    assert manifest["best"]["uri"] == result.best_checkpoint

    run_bucket, run_key = split_s3(result.run_uri)
    keys = s3_keys(s3_env, run_bucket, run_key + "/")
    assert f"{run_key}/config.yaml" in keys
    assert any("/tensorboard/" in k for k in keys)
    last = s3_checkpoint(s3_env, result.last_checkpoint)
    assert last["lineage"]["flow_run_id"] == str(flow_run["id"])
    assert last["lineage"]["run_uri"] == result.run_uri

    by_key = {a.key: a for a in checkpoints_artifact(flow_run["id"]) if a.key}
    assert f"{FLOW_EXPERIMENT}-checkpoints" in by_key, sorted(by_key)
    rows = by_key[f"{FLOW_EXPERIMENT}-checkpoints"].data
    rows = json.loads(rows) if isinstance(rows, str) else rows
    assert {r["kind"]: r["uri"] for r in rows} == {
        "run": result.run_uri,
        "last": result.last_checkpoint,
        "best": result.best_checkpoint,
    }


# -- 3. resume from S3 and from an earlier flow run -------------------------------------------------------


def _resume(tiny_config, s3_env, bucket, resume: str, epochs: int, experiment: str) -> dict:
    config = tiny_config(
        f"storage.uri=s3://{bucket}/runs",
        f"storage.endpoint_url={s3_env.endpoint_url}",
        f"storage.experiment={experiment}",
        f"train_params.epochs={epochs}",
    )
    return run_training(config, resume=resume)


def _assert_lineage(s3_env, resumed: dict, parent_uri: str, epochs: int, steps_per_epoch: int) -> None:
    """Counters continue from the parent's, and the new run's checkpoints and manifest name the parent."""
    assert resumed.resumed_from == parent_uri
    assert resumed.epochs == epochs
    last = s3_checkpoint(s3_env, resumed.last_checkpoint)
    assert (last["epoch"], last["progress"]["global_step"]) == (epochs, epochs * steps_per_epoch)
    assert last["lineage"]["parent"] == parent_uri
    assert s3_manifest(s3_env, resumed.run_uri)["parent"] == parent_uri


def test_resume_from_s3_checkpoint_uri_continues_exactly(direct_run, tiny_config, s3_env, bucket):
    first = direct_run["result"]
    steps = first.global_step // first.epochs
    epoch1 = s3_manifest(s3_env, first.run_uri)["checkpoints"][0]
    assert epoch1["epoch"] == 1
    resumed = _resume(tiny_config, s3_env, bucket, epoch1["uri"], epochs=2, experiment="resumed")
    _assert_lineage(s3_env, resumed, epoch1["uri"], epochs=2, steps_per_epoch=steps)
    assert resumed.run_uri != first.run_uri
    # Exact resume through S3: epoch 1 + a resumed epoch 2 equals the uninterrupted 2-epoch run.
    uninterrupted = s3_checkpoint(s3_env, first.last_checkpoint)["state_dict"]
    continued = s3_checkpoint(s3_env, resumed.last_checkpoint)["state_dict"]
    assert all(torch.equal(uninterrupted[k], continued[k]) for k in uninterrupted)


def test_resume_from_s3_run_prefix_takes_newest_checkpoint(direct_run, tiny_config, s3_env, bucket):
    first = direct_run["result"]
    steps = first.global_step // first.epochs
    resumed = _resume(tiny_config, s3_env, bucket, first.run_uri + "/", epochs=3, experiment="resumed")
    _assert_lineage(s3_env, resumed, first.last_checkpoint, epochs=3, steps_per_epoch=steps)


def test_resume_from_prefect_flow_run_reference(flow_run, tiny_dataset, tiny_config, s3_env, bucket):
    from flows.train import train_hand_gesture_classifier

    first = flow_run["result"]
    steps = s3_manifest(s3_env, first.run_uri)["checkpoints"][-1]["global_step"] // 2
    ref = f"prefect://flow-runs/{flow_run['id']}"
    state = train_hand_gesture_classifier(
        config="configs/demo.yaml",
        overrides=[o for o in flow_run["overrides"] if not o.startswith("train_params.epochs")]
        + ["train_params.epochs=3"],
        storage=f"s3://{bucket}/runs",
        resume=ref,
        return_state=True,
    )
    assert state.is_completed(), state.message
    resumed = state.result()
    assert resumed.run_uri.startswith(f"s3://{bucket}/runs/{FLOW_EXPERIMENT}/")
    _assert_lineage(s3_env, resumed, first.last_checkpoint, 3, steps)
    last = s3_checkpoint(s3_env, resumed.last_checkpoint)
    assert last["lineage"]["flow_run_id"] == str(state.state_details.flow_run_id)

    # `/best`: that run's best_model.pth, whichever epoch it was.
    best_epoch = s3_manifest(s3_env, first.run_uri)["best"]["epoch"]
    from_best = _resume(
        tiny_config, s3_env, bucket, ref + "/best", epochs=best_epoch + 1, experiment="from-best"
    )
    _assert_lineage(s3_env, from_best, first.best_checkpoint, best_epoch + 1, steps)


def test_flow_results_are_persisted_in_the_runs_bucket(flow_run, s3_env: MotoServer, bucket: str):
    from handgesture.checkpoints.prefect_refs import read_summary

    results = [key for key in s3_keys(s3_env, bucket) if key.startswith("runs/prefect-results/")]
    assert results, f"no persisted results under s3://{bucket}/runs/prefect-results/"
    found = read_summary(flow_run["id"])  # read back through the API and the saved S3Bucket block
    assert found == flow_run["result"]


# -- 4. credentials from saved blocks ---------------------------------------------------------------------


def test_train_and_resume_with_credentials_from_saved_blocks(
    prefect_harness, tiny_config, s3_env: MotoServer, monkeypatch
):
    from prefect_aws import AwsCredentials, S3Bucket

    bucket = s3_env.create_bucket("blocks")
    creds_name = save_credentials_block(s3_env, s3_env.access_key, s3_env.secret_key)
    bucket_name = f"bucket-{uuid.uuid4().hex[:8]}"
    S3Bucket(bucket_name=bucket, credentials=AwsCredentials.load(creds_name, _sync=True)).save(
        bucket_name, overwrite=True
    )
    remove_env_credentials(monkeypatch)

    # The endpoint comes from the block too: no storage.endpoint_url.
    first = run_training(
        tiny_config(
            f"storage.uri=s3://{bucket}/runs",
            f"storage.block=aws-credentials/{creds_name}",
            "train_params.epochs=1",
        )
    )
    assert first.last_checkpoint.startswith(f"s3://{bucket}/runs/")
    resumed = run_training(
        tiny_config(
            f"storage.uri=s3://{bucket}/runs",
            f"storage.block=s3-bucket/{bucket_name}",
            "train_params.epochs=2",
        ),
        resume=first.last_checkpoint,
    )
    assert resumed.resumed_from == first.last_checkpoint and resumed.epochs == 2
    keys = s3_keys(s3_env, bucket)
    for result in (first, resumed):
        assert split_s3(result.last_checkpoint)[1] in keys
        assert split_s3(result.best_checkpoint)[1] in keys
    assert s3_checkpoint(s3_env, resumed.last_checkpoint)["lineage"]["parent"] == first.last_checkpoint


# -- 5. the notebook helper -------------------------------------------------------------------------------


def test_load_model_from_s3_uri_and_flow_run_reference(flow_run, s3_env: MotoServer):
    from handgesture.inference import load_model

    result = flow_run["result"]
    settings = S3Settings(endpoint_url=s3_env.endpoint_url)
    by_uri = load_model(result.best_checkpoint, s3=settings)
    by_ref = load_model(f"prefect://flow-runs/{flow_run['id']}", s3=settings)
    assert by_uri.uri == result.best_checkpoint and by_ref.uri == result.last_checkpoint
    assert by_ref.epoch == 2
    expected = s3_checkpoint(s3_env, result.last_checkpoint)["state_dict"]
    for loaded in (by_uri, by_ref):
        assert loaded.model_name == "MobileNetV3_small" and loaded.image_size == [32, 32]
        assert len(loaded.class_names) == 19 and not loaded.model.training
    assert all(torch.equal(v, expected[k]) for k, v in by_ref.model.state_dict().items())


# -- 6. bad input ------------------------------------------------------------------------------------------


def _resume_error(tiny_config, s3_env, bucket, resume: str, *overrides: str) -> Exception:
    config = tiny_config(
        f"storage.uri=s3://{bucket}/runs", f"storage.endpoint_url={s3_env.endpoint_url}", *overrides
    )
    with pytest.raises((CheckpointError, StorageError)) as info:
        run_training(config, resume=resume)
    return info.value


def test_resume_from_missing_s3_key(tiny_config, s3_env, bucket):
    uri = f"s3://{bucket}/runs/nowhere/run/checkpoints/e0009-s00000099.pth"
    error = _resume_error(tiny_config, s3_env, bucket, uri)
    assert isinstance(error, CheckpointError) and uri in str(error) and "does not exist" in str(error)


def test_resume_from_missing_bucket(tiny_config, s3_env, bucket):
    missing = f"no-such-bucket-{uuid.uuid4().hex[:8]}"
    error = _resume_error(tiny_config, s3_env, bucket, f"s3://{missing}/runs/x/best_model.pth")
    assert isinstance(error, BucketNotFoundError)
    assert missing in str(error) and s3_env.endpoint_url in str(error)


def test_resume_from_run_prefix_without_checkpoints(tiny_config, s3_env, bucket):
    client = s3_env.client()
    client.put_object(Bucket=bucket, Key="runs/empty-run/config.yaml", Body=b"model: {}\n")
    client.put_object(Bucket=bucket, Key="runs/empty-run/manifest.json", Body=b'{"checkpoints": []}')
    for prefix, what in (("empty-run", "has no committed checkpoints"), ("no-run", "does not exist")):
        uri = f"s3://{bucket}/runs/{prefix}"
        error = _resume_error(tiny_config, s3_env, bucket, uri)
        assert isinstance(error, CheckpointError) and uri in str(error) and what in str(error), error


def test_unsupported_scheme_for_storage_and_for_resume(tiny_config, s3_env, bucket):
    with pytest.raises(UnsupportedSchemeError) as info:
        run_training(tiny_config("storage.uri=gs://bucket/runs"))
    message = str(info.value)
    assert "gs://bucket/runs" in message and all(s in message for s in ("local path", "file://", "s3://"))

    for uri in ("gs://bucket/runs/r/best_model.pth", "http://example.com/runs/r"):
        error = _resume_error(tiny_config, s3_env, bucket, uri)
        assert isinstance(error, UnsupportedSchemeError), error
        message = str(error)
        assert uri in message, message
        assert all(s in message for s in ("file://", "s3://", "prefect://flow-runs/<id>")), message


def test_resume_from_flow_run_that_does_not_exist(prefect_harness, tiny_config, s3_env, bucket):
    run_id = uuid.uuid4()
    error = _resume_error(tiny_config, s3_env, bucket, f"prefect://flow-runs/{run_id}")
    assert isinstance(error, CheckpointError) and str(run_id) in str(error)
    assert "no flow run" in str(error)


def test_wrong_secret_in_saved_block_names_the_block_not_the_secret(
    prefect_harness, tiny_config, s3_env: MotoServer, monkeypatch
):
    key_id, real_secret = iam_access_key(s3_env)
    bucket = s3_env.create_bucket("wrong")
    wrong_secret = f"wrong-secret-{uuid.uuid4().hex}"
    name = save_credentials_block(s3_env, key_id, wrong_secret, prefix="wrong")
    remove_env_credentials(monkeypatch)
    config = tiny_config(f"storage.uri=s3://{bucket}/runs", f"storage.block=aws-credentials/{name}")
    with captured_logs("", "botocore", "handgesture", "prefect") as logs, s3_env.auth_enforced():
        with pytest.raises(StorageCredentialsError) as info:
            run_training(config)
        with pytest.raises(StorageCredentialsError) as resume_info:
            run_training(config, resume=f"s3://{bucket}/runs/x/best_model.pth")
    for error in (info.value, resume_info.value):
        message = str(error)
        assert f"aws-credentials/{name}" in message and s3_env.endpoint_url in message, message
        assert wrong_secret not in message and real_secret not in message
    assert "botocore" in logs.getvalue()  # the S3 client's debug logs were captured, and searched
    assert wrong_secret not in logs.getvalue() and real_secret not in logs.getvalue()


# -- 7. secrets never leak --------------------------------------------------------------------------------


def test_secret_from_saved_block_is_written_nowhere(
    prefect_harness, tiny_dataset, s3_env: MotoServer, monkeypatch, tmp_path
):
    from flows.train import train_hand_gesture_classifier

    key_id, secret = iam_access_key(s3_env)  # moto makes a random 40-character secret
    bucket = s3_env.create_bucket("leak")
    name = save_credentials_block(s3_env, key_id, secret, prefix="leak")
    remove_env_credentials(monkeypatch)
    local = tmp_path / "local"  # spool copies, TensorBoard staging and the download cache all land here
    local.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(local))
    monkeypatch.setenv("HANDGESTURE_CACHE", str(local / "cache"))

    params = {
        "config": "configs/demo.yaml",
        "overrides": tiny_dotlist(tiny_dataset)
        + [f"storage.block=aws-credentials/{name}", "storage.experiment=leak"],
        "storage": f"s3://{bucket}/runs",
    }
    with captured_logs("", "botocore", "handgesture", "prefect") as logs, s3_env.auth_enforced():
        first = train_hand_gesture_classifier(
            **{**params, "overrides": params["overrides"] + ["train_params.epochs=1"]}, return_state=True
        )
        assert first.is_completed(), first.message
        ref = f"prefect://flow-runs/{first.state_details.flow_run_id}"
        second = train_hand_gesture_classifier(
            **{**params, "overrides": params["overrides"] + ["train_params.epochs=2"]},
            resume=ref,
            return_state=True,
        )
        assert second.is_completed(), second.message
    flow_run_ids = [first.state_details.flow_run_id, second.state_details.flow_run_id]
    assert second.result().resumed_from == first.result().last_checkpoint

    needle = secret.encode()
    places: dict[str, bytes] = {}
    for key in s3_keys(s3_env, bucket):
        data = s3_read(s3_env, f"s3://{bucket}/{key}")
        places[f"s3://{bucket}/{key}"] = data
        if key.endswith(".pth"):  # the embedded config, decoded, too
            checkpoint = torch.load(io.BytesIO(data), weights_only=True)
            embedded = {k: checkpoint.get(k) for k in ("config", "lineage", "metrics", "created_at")}
            places[f"{key} config"] = json.dumps(embedded, default=str).encode()
    assert any(k.endswith(".pth") for k in places) and any("tfevents" in k for k in places)
    local_files = [p for p in local.rglob("*") if p.is_file()]
    assert any(p.suffix == ".pth" for p in local_files)  # the resume's download went to the cache
    places.update({str(p): p.read_bytes() for p in local_files})
    for flow_run_id in flow_run_ids:
        for artifact in checkpoints_artifact(flow_run_id):
            places[f"artifact {artifact.key}"] = json.dumps([artifact.data, artifact.description]).encode()
        places[f"logs of {flow_run_id}"] = json.dumps(_flow_run_logs(flow_run_id)).encode()
    places["logs"] = logs.getvalue().encode()  # library, Prefect (prints included: log_prints) and botocore
    assert "botocore" in logs.getvalue() and "handgesture" in logs.getvalue()  # debug logs were captured
    assert [where for where, data in places.items() if needle in data] == []


def _flow_run_logs(flow_run_id) -> list[str]:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId
    from prefect.logging.handlers import APILogHandler

    APILogHandler().flush()  # send what is queued before reading it back

    async def read():
        async with get_client() as client:
            logs = await client.read_logs(
                log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[flow_run_id]))
            )
            return [log.message for log in logs]

    return asyncio.run(read())


# -- 8. the server goes away (last: restarting moto loses its buckets) -----------------------------------


def test_unreachable_server_fails_clearly_and_keeps_the_spool_copy(
    tiny_config, s3_env: MotoServer, monkeypatch, tmp_path
):
    bucket = s3_env.create_bucket("outage")
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # the spool lives under this test's folder
    config = tiny_config(
        f"storage.uri=s3://{bucket}/runs",
        f"storage.endpoint_url={s3_env.endpoint_url}",
        "storage.max_retries=1",
        "storage.upload_timeout=5",
    )

    def stop_after_first_epoch(progress, metrics):
        if progress.epoch == 1:
            s3_env.stop()  # epoch 2's checkpoint is committed while the server is down

    try:
        with pytest.raises(StorageError) as info:
            run_training(config, on_epoch=stop_after_first_epoch)
        message = str(info.value)
        assert s3_env.endpoint_url in message and f"s3://{bucket}/runs" in message, message
        kept = [Path(p) for p in message.partition("kept until uploaded: ")[2].split(", ")]
        epoch2 = [p for p in kept if "checkpoints%2Fe0002-" in p.name]  # the spool name quotes each key
        assert len(epoch2) == 1, message
        assert all(p.is_file() and p.is_relative_to(tmp_path) for p in kept), message
        assert torch.load(epoch2[0], weights_only=True)["progress"]["epoch"] == 2
    finally:
        s3_env.start()
