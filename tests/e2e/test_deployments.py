"""prefect.yaml for real: a `prefect server start` on loopback, `prefect deploy --all`, a process worker, the
moto S3 server; runs triggered with `prefect deployment run --param ...` exactly as a user would."""

from __future__ import annotations

import io
import json

import pytest
import torch

from tests.e2e.servers import PrefectServer, new_home
from tests.tiny import tiny_dotlist

pytestmark = [pytest.mark.slow, pytest.mark.e2e, pytest.mark.s3]
POOL = "handgesture-gpu"
TRAIN = "train-hand-gesture-classifier/train"
RETRAIN = "retrain-hand-gesture-classifier/scheduled-retrain"
EXPERIMENT = "e2e"


@pytest.fixture(scope="module")
def prefect_server(s3_server):
    # The flow runs' S3 credentials reach them through the worker's environment (dummies for moto).
    server = PrefectServer(new_home(), extra_env={**s3_server.env(), "AWS_EC2_METADATA_DISABLED": "true"})
    try:
        server.start()
        server.cli("work-pool", "create", POOL, "--type", "process")
        server.cli("deploy", "--all")
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def worker(prefect_server):
    proc = prefect_server.start_worker(POOL)
    yield proc
    assert proc.poll() is None, prefect_server.logs("worker")


@pytest.fixture
def params(tiny_dataset, s3_server):
    bucket = s3_server.create_bucket("e2e")
    overrides = [
        *tiny_dotlist(tiny_dataset),
        "tracking.tensorboard=false",
        f"storage.experiment={EXPERIMENT}",
        f"storage.endpoint_url={s3_server.endpoint_url}",
    ]

    def make(*extra: str, **more) -> dict:
        return {
            "config": "configs/demo.yaml",
            "overrides": overrides + list(extra),
            "storage": f"s3://{bucket}/runs",
            **more,
        }

    make.bucket = bucket
    return make


def completed(server: PrefectServer, flow_run_id: str) -> dict:
    run = server.wait(flow_run_id)
    assert run["state"]["type"] == "COMPLETED", (
        f"{run['state']}\n{server.flow_run_logs(flow_run_id)}\n{server.logs('worker')}"
    )
    return run


def artifacts(server: PrefectServer, flow_run_id: str) -> dict[str, dict]:
    body = {"artifacts": {"flow_run_id": {"any_": [flow_run_id]}}}
    return {a["key"]: a for a in server.api("POST", "/artifacts/filter", json=body).json() if a["key"]}


def checkpoint_rows(server: PrefectServer, flow_run_id: str) -> dict[str, str]:
    data = artifacts(server, flow_run_id)[f"{EXPERIMENT}-checkpoints"]["data"]
    rows = json.loads(data) if isinstance(data, str) else data
    return {row["kind"]: row["uri"] for row in rows}


def s3_keys(s3_server, bucket: str, prefix: str) -> list[str]:
    pages = s3_server.client().get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    return [obj["Key"] for page in pages for obj in page.get("Contents", [])]


def s3_object(s3_server, uri: str) -> bytes:
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    return s3_server.client().get_object(Bucket=bucket, Key=key)["Body"].read()


def lineage_parent(s3_server, checkpoint_uri: str) -> str | None:
    checkpoint = torch.load(io.BytesIO(s3_object(s3_server, checkpoint_uri)), weights_only=True)
    return checkpoint["lineage"]["parent"]


def test_deployments_are_registered_with_schedule_pool_and_typed_parameters(prefect_server):
    deployments = {d["name"]: d for d in prefect_server.api("POST", "/deployments/filter", json={}).json()}
    assert set(deployments) >= {"train", "scheduled-retrain"}
    retrain = deployments["scheduled-retrain"]
    [schedule] = retrain["schedules"]
    assert schedule["active"]
    assert schedule["schedule"]["cron"] == "0 3 * * *"
    assert schedule["schedule"]["timezone"] == "UTC"
    assert retrain["global_concurrency_limit"]["limit"] == 1
    for deployment in deployments.values():
        assert deployment["work_pool_name"] == POOL
        assert deployment["enforce_parameter_schema"]
        assert deployment["job_variables"]["env"]["CUDA_VISIBLE_DEVICES"] == "0"
        [step] = deployment["pull_steps"]
        assert step["prefect.deployments.steps.set_working_directory"]["directory"] == str(
            prefect_server.env["HANDGESTURE_REPO_DIR"]
        )
    assert deployments["train"]["parameters"] == {
        "config": "configs/demo.yaml",
        "overrides": [],
        "resume": None,
        "storage": "runs",
    }
    pool = prefect_server.api("GET", f"/work_pools/{POOL}").json()
    assert pool["type"] == "process"


def test_server_rejects_bad_parameters_before_a_run_exists(prefect_server):
    def count() -> int:
        # The scheduler adds SCHEDULED runs for the cron deployment whenever its loop fires; those are not
        # runs a rejected `deployment run` could have made, so they are left out of the count.
        not_scheduled = {"flow_runs": {"state": {"type": {"not_any_": ["SCHEDULED"]}}}}
        return prefect_server.api("POST", "/flow_runs/count", json=not_scheduled).json()

    before = count()
    for name, flag, field in (
        (TRAIN, "--param=overrides=42", "overrides"),  # a list of strings expected
        (TRAIN, "--param=resume=[1, 2]", "resume"),  # a string or null expected
        (RETRAIN, "--param=min_improvement=-1", "min_improvement"),  # 0 <= x <= 1
        (RETRAIN, "--param=min_improvement=high", "min_improvement"),
    ):
        done = prefect_server.cli("deployment", "run", name, flag, check=False)
        assert done.returncode != 0, done.stdout
        assert f"Validation failed for field '{field}'" in done.stdout, done.stdout
    assert count() == before


def test_train_to_s3_then_resume_by_flow_run_reference(prefect_server, worker, params, s3_server):
    # Deliberately weak first model (lr 1e-4, 1 epoch): it is also the incumbent of the promotion test.
    first_id = prefect_server.run_deployment(TRAIN, params("train_params.epochs=1", "optimizer.lr=0.0001"))
    completed(prefect_server, first_id)
    first = checkpoint_rows(prefect_server, first_id)
    run_prefix = first["run"].removeprefix(f"s3://{params.bucket}/")
    assert run_prefix.startswith(f"runs/{EXPERIMENT}/")
    keys = s3_keys(s3_server, params.bucket, run_prefix)
    assert {
        f"{run_prefix}/manifest.json",
        f"{run_prefix}/best_model.pth",
        f"{run_prefix}/config.yaml",
    } <= set(keys)
    assert any(k.startswith(f"{run_prefix}/checkpoints/e0001-") for k in keys)
    manifest = json.loads(s3_object(s3_server, f"{first['run']}/manifest.json"))
    assert manifest["flow_run_id"] == first_id
    assert {
        f"{EXPERIMENT}-{kind}" for kind in ("report", "metrics", "checkpoints", "best-checkpoint")
    } <= set(artifacts(prefect_server, first_id))

    second_id = prefect_server.run_deployment(
        TRAIN, params("train_params.epochs=2", resume=f"prefect://flow-runs/{first_id}")
    )
    completed(prefect_server, second_id)
    second = checkpoint_rows(prefect_server, second_id)
    assert second["run"] != first["run"]
    # Lineage: the resumed run's checkpoints name the first run's last checkpoint as their parent.
    assert lineage_parent(s3_server, second["last"]) == first["last"]
    assert json.loads(s3_object(s3_server, f"{second['run']}/manifest.json"))["parent"] == first["last"]
    assert second["last"].endswith(".pth") and "/checkpoints/e0002-" in second["last"]


def test_scheduled_retrain_promotes_a_better_model_and_keeps_the_best_against_a_worse_one(
    prefect_server, worker, params, s3_server
):
    pointer_uri = f"s3://{params.bucket}/runs/{EXPERIMENT}/best.json"

    def pointer() -> dict:
        return json.loads(s3_object(s3_server, pointer_uri))

    def retrain(*extra: str) -> tuple[str, dict[str, str], str]:
        run_id = prefect_server.run_deployment(RETRAIN, params(*extra))
        completed(prefect_server, run_id)
        found = artifacts(prefect_server, run_id)
        return run_id, checkpoint_rows(prefect_server, run_id), found[f"{EXPERIMENT}-promotion"]["data"]

    # No best yet: a weak model trained from scratch becomes the first best.
    first_id, first, report = retrain("train_params.epochs=1", "optimizer.lr=0.0001")
    assert report.startswith("## Promoted") and "no current best" in report
    assert pointer()["checkpoint"] == first["best"]
    assert pointer()["flow_run_id"] == first_id

    # Better: fine-tuned from the current best with a working learning rate.
    better_id, better, report = retrain("train_params.epochs=2", "optimizer.lr=0.02")
    assert lineage_parent(s3_server, better["last"]) == first["best"]  # it started from the current best
    assert report.startswith("## Promoted"), report
    promoted = pointer()
    assert promoted["checkpoint"] == better["best"]
    assert promoted["previous"] == first["best"]
    assert promoted["metric"]["value"] > 0
    manifest = json.loads(s3_object(s3_server, f"{better['run']}/manifest.json"))
    assert promoted["sha256"] == manifest["best"]["sha256"]

    # Worse: a diverging learning rate wrecks the fine-tuned weights; the pointer stays where it was.
    _, worse, report = retrain("train_params.epochs=1", "optimizer.lr=50")
    assert lineage_parent(s3_server, worse["last"]) == better["best"]
    assert report.startswith("## Not promoted"), report
    assert pointer() == promoted
