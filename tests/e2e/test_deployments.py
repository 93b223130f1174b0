"""prefect.yaml for real: a `prefect server start` on loopback, the moto S3 server, and the commands
docs/deployments.md prints (work pools, `prefect deploy`, a process worker, `prefect deployment run`,
`make run`) run as a user would, with the test's data and S3 settings added to `overrides`."""

from __future__ import annotations

import io
import json
import re
import subprocess
import sys
import time

import pytest
import torch

from tests.e2e.docs import block, by_hand, find, with_test_params
from tests.e2e.servers import ROOT, PrefectServer, new_home
from tests.report_width import artifact_problems
from tests.tiny import tiny_dotlist

pytestmark = [pytest.mark.slow, pytest.mark.e2e, pytest.mark.s3]
POOL = "handgesture-gpu"
KINDS = {POOL: "process", "handgesture-docker": "docker", "handgesture-kubernetes": "kubernetes"}
TRAIN = "train-hand-gesture-classifier/train"
RETRAIN = "retrain-hand-gesture-classifier/scheduled-retrain"
EVALUATE = "evaluate-hand-gesture-classifier/evaluate"
SWEEP = "sweep-hand-gesture-classifier/sweep"
EXPERIMENT = "e2e"


@pytest.fixture(scope="module")
def prefect_server(s3_server):
    # The flow runs' S3 credentials reach them through the worker's environment (dummies for moto).
    server = PrefectServer(new_home(), extra_env={**s3_server.env(), "AWS_EC2_METADATA_DISABLED": "true"})
    pools = (
        find(by_hand(), "prefect", "work-pool", "create")
        + find(block("### Docker"), "prefect", "work-pool", "create")
        + find(block("### Kubernetes"), "prefect", "work-pool", "create")
    )
    deploys = find(by_hand(), "prefect", "deploy") + find(block("clones the repository"), "prefect", "deploy")
    assert len(pools) == 3 and len(deploys) == 1, "the docs' commands changed: update this test with them"
    try:
        server.start()
        for command in pools:  # process, Docker, and Kubernetes with the GPU template
            server.cli(*command[1:])
        server.cli(*deploys[0][1:])
        # The git deployment, as the docs print it, cloning this repository (what is committed of it).
        server.cli("deploy", "--name", "train-from-git", env={"HANDGESTURE_GIT_URL": f"file://{ROOT}"})
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

    make.bucket, make.overrides, make.storage = bucket, overrides, f"s3://{bucket}/runs"
    make.endpoint_override = f"storage.endpoint_url={s3_server.endpoint_url}"
    return make


def promotion_events(server: PrefectServer, count: int, timeout: float = 60.0) -> list[dict]:
    """The promotion events the server has stored, once there are `count` (events arrive asynchronously)."""
    body = {"filter": {"event": {"name": ["handgesture.model.promoted"]}}, "limit": 50}
    deadline = time.monotonic() + timeout
    while True:
        events = server.api("POST", "/events/filter", json=body).json()["events"]
        if len(events) >= count or time.monotonic() > deadline:
            return events
        time.sleep(0.5)


class Webhook:
    """A local HTTP endpoint that records the JSON bodies POSTed to it."""

    def __init__(self):
        import http.server
        import threading

        received, arrived = self.received, self.arrived = [], threading.Condition()

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 (http.server's name)
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with arrived:
                    received.append(json.loads(body))
                    arrived.notify_all()
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/promoted"

    def wait_for(self, count: int, timeout: float = 120.0) -> list[dict]:
        with self.arrived:
            assert self.arrived.wait_for(lambda: len(self.received) >= count, timeout), self.received
            return list(self.received)


@pytest.fixture(scope="module")
def webhook(prefect_server, tmp_path_factory):
    """The docs' automation, created as printed, with a saved Webhook block pointing at a local server."""
    hook = Webhook()
    save = f"from prefect.blocks.webhook import Webhook; print(Webhook(url={hook.url!r}).save('promotions'))"
    done = subprocess.run(
        [sys.executable, "-c", save], env=prefect_server.env, capture_output=True, text=True, check=True
    )
    block_id = done.stdout.strip().splitlines()[-1]
    automation = (
        (ROOT / "deploy/automation-on-promotion.yaml").read_text().replace("<webhook block id>", block_id)
    )
    path = tmp_path_factory.mktemp("automation") / "automation.yaml"
    path.write_text(automation)
    [create] = find(block("## Reacting to a promotion"), "prefect", "automation", "create")
    prefect_server.cli(*[str(path) if word.endswith(".yaml") else word for word in create[1:]])
    yield hook
    hook.server.shutdown()


def completed(server: PrefectServer, flow_run_id: str, name: str | None = None) -> dict:
    """The finished flow run; with `name` (what creating it printed), it still has that name."""
    run = server.wait(flow_run_id)
    assert run["state"]["type"] == "COMPLETED", (
        f"{run['parameters']}\n{run['state']}\n{server.flow_run_logs(flow_run_id)}\n{server.logs('worker')}"
    )
    assert name is None or run["name"] == name, f"created as {name!r}, finished as {run['name']!r}"
    return run


def artifacts(server: PrefectServer, flow_run_id: str) -> dict[str, dict]:
    """The flow run's artifacts as the server stores them, each checked to fit the UI at 1280 px."""
    stored = server.artifacts(flow_run_id)
    problems = [p for a in stored for p in artifact_problems(a.type, a.data, a.key or "")]
    assert problems == [], "\n".join(problems)
    return {a.key: {"data": a.data, "type": a.type} for a in stored if a.key}


def report_command(server: PrefectServer, flow_run_id: str) -> str:
    """The `prefect deployment run ...` block of the run's report, as printed there."""
    report = artifacts(server, flow_run_id)[f"{EXPERIMENT}-report"]["data"]
    [command] = [
        b for b in re.findall(r"```\n(.*?)\n```", report, re.S) if b.startswith("prefect deployment")
    ]
    return command


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
    assert set(deployments) == {"train", "scheduled-retrain", "evaluate", "sweep", "train-from-git"}
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
    for name in ("train", "scheduled-retrain", "evaluate", "sweep"):
        [step] = deployments[name]["pull_steps"]
        assert step["prefect.deployments.steps.set_working_directory"]["directory"] == str(
            prefect_server.env["HANDGESTURE_REPO_DIR"]
        )
    clone = deployments["train-from-git"]["pull_steps"][0]["prefect.deployments.steps.git_clone"]
    assert clone["repository"] == f"file://{ROOT}"
    assert deployments["train"]["parameters"] == {
        "config": "configs/demo.yaml",
        "overrides": [],
        "resume": None,
        "storage": None,  # the config's, or a resumed checkpoint's
    }
    pools = {name: prefect_server.api("GET", f"/work_pools/{name}").json() for name in KINDS}
    assert {name: pool["type"] for name, pool in pools.items()} == KINDS
    template = pools["handgesture-kubernetes"]["base_job_template"]
    container = template["job_configuration"]["job_manifest"]["spec"]["template"]["spec"]["containers"][0]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == "{{ gpu_count }}"
    assert template["variables"]["properties"]["gpu_count"]["default"] == 1


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


def test_train_to_s3_then_resume_by_flow_run_reference_then_evaluate(
    prefect_server, worker, params, s3_server, tmp_path
):
    train, resume = find(by_hand(), "prefect", "deployment", "run", TRAIN)
    # Deliberately weak first model (lr 1e-4, 1 epoch): it is also the incumbent of the promotion test.
    command = with_test_params(train, [*params.overrides, "optimizer.lr=0.0001"], storage=params.storage)
    first_id, first_name = prefect_server.create_run(command)
    completed(prefect_server, first_id, first_name)  # one name from creation on
    first = checkpoint_rows(prefect_server, first_id)
    assert first["run"].rsplit("/", 1)[1] == f"{first_name}-{first_id[:8]}"
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

    # The resume as `make run` prints it: a reference and a total epoch count, plus the test's storage and
    # experiment as the first run had them (a checkpoint never says where runs go; the S3 endpoint only
    # because the test's bucket is on a local server). The by-hand line is the same run.
    make_resume = find(block("## Commands"), "make", "run")[1]
    assert (
        "resume=prefect://flow-runs/<flow-run-id>" in make_resume[2]
        and resume[5] == make_resume[2].split()[1]
    )
    command = [word.replace("<flow-run-id>", first_id) for word in make_resume]
    second_id = prefect_server.run_command(
        with_test_params(
            command, [params.endpoint_override, f"storage.experiment={EXPERIMENT}"], storage=params.storage
        )
    )
    completed(prefect_server, second_id)
    second = checkpoint_rows(prefect_server, second_id)
    assert second["run"] != first["run"] and second["run"].startswith(
        f"s3://{params.bucket}/runs/{EXPERIMENT}/"
    )
    # Lineage: the resumed run's checkpoints name the first run's last checkpoint as their parent.
    assert lineage_parent(s3_server, second["last"]) == first["last"]
    assert json.loads(s3_object(s3_server, f"{second['run']}/manifest.json"))["parent"] == first["last"]
    assert second["last"].endswith(".pth") and "/checkpoints/e0002-" in second["last"]

    # The first run's report says how to go on through the deployment: run that block as printed, in a shell.
    third_id, third_name = prefect_server.create_run_in_shell(report_command(prefect_server, first_id))
    completed(prefect_server, third_id, third_name)
    third = checkpoint_rows(prefect_server, third_id)
    assert third["run"] not in (first["run"], second["run"])
    assert third["run"].startswith(f"s3://{params.bucket}/runs/{EXPERIMENT}/")  # beside the first run
    assert lineage_parent(s3_server, third["last"]) == first["last"]  # continued from that run
    assert "/checkpoints/e0006-" in third["last"]  # five more epochs, as the report says

    # The evaluate deployment as the docs print it, on the resumed run's best (out: not the checkout).
    [evaluate] = find(by_hand(), "prefect", "deployment", "run", EVALUATE)
    command = [word.replace("<flow-run-id>", second_id) for word in evaluate]
    # The experiment names its artifacts: this run's own (a checkpoint's config never names where things go).
    own = [params.endpoint_override, f"storage.experiment={EXPERIMENT}"]
    evaluation_id = prefect_server.run_command(
        with_test_params(command, own, out=str(tmp_path / "evaluation"))
    )
    completed(prefect_server, evaluation_id)
    report = json.loads((tmp_path / "evaluation" / "report.json").read_text())
    assert (
        report["checkpoint"] == second["best"] and report["split"] == "val"
    )  # the tiny data has no test split
    assert {f"{EXPERIMENT}-evaluation", f"{EXPERIMENT}-evaluation-per-class"} <= set(
        artifacts(prefect_server, evaluation_id)
    )


def test_a_worker_without_the_checkout_runs_the_clone(prefect_server, worker, params):
    command = ["prefect", "deployment", "run", "train-hand-gesture-classifier/train-from-git"]
    run_id = prefect_server.run_command(with_test_params(command, params.overrides, storage=params.storage))
    completed(prefect_server, run_id)
    assert "Cloned repository" in prefect_server.flow_run_logs(run_id) or checkpoint_rows(
        prefect_server, run_id
    )


def test_scheduled_retrain_promotes_a_better_model_and_keeps_the_best_against_a_worse_one(
    prefect_server, worker, params, s3_server, webhook
):
    pointer_uri = f"s3://{params.bucket}/runs/{EXPERIMENT}/best.json"
    [retrain_command] = find(by_hand(), "prefect", "deployment", "run", RETRAIN)

    def pointer() -> dict:
        return json.loads(s3_object(s3_server, pointer_uri))

    def retrain(*extra: str) -> tuple[str, dict[str, str], str]:
        command = with_test_params(retrain_command, [*params.overrides, *extra], storage=params.storage)
        run_id = prefect_server.run_command(command)
        completed(prefect_server, run_id)
        found = artifacts(prefect_server, run_id)
        return run_id, checkpoint_rows(prefect_server, run_id), found[f"{EXPERIMENT}-promotion"]["data"]

    # No best yet: a weak model trained from scratch becomes the first best.
    first_id, first, report = retrain("train_params.epochs=1", "optimizer.lr=0.0001")
    assert report.startswith("## Promoted") and "no current best" in report
    assert pointer()["checkpoint"] == first["best"]
    assert pointer()["flow_run_id"] == first_id
    # The promotion is an event, and the documented automation posts it to the webhook.
    [event] = promotion_events(prefect_server, 1)
    assert event["payload"]["checkpoint"] == first["best"] and event["payload"]["experiment"] == EXPERIMENT
    posted = webhook.wait_for(1)
    assert first["best"] in posted[0]["text"] and f"{EXPERIMENT}: new best model" in posted[0]["text"]

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

    # Worse: a learning rate far too high wrecks the fine-tuned weights; the pointer stays where it was.
    _, worse, report = retrain("train_params.epochs=1", "optimizer.lr=2")
    assert lineage_parent(s3_server, worse["last"]) == better["best"]
    assert report.startswith("## Not promoted"), report
    assert pointer() == promoted


def test_a_sweep_halves_four_trials_and_resumes_the_survivors_from_their_own_runs(
    prefect_server, worker, params, s3_server
):
    # The docs' command: a 2 x 2 grid, rungs of 1 and 2 epochs, the best half going on, the winner offered
    # to the experiment's best pointer.
    [sweep] = find(block("## Sweeps"), "prefect", "deployment", "run", SWEEP)
    shared = [o for o in params.overrides if not o.startswith("train_params.epochs=")]  # the rungs set it
    sweep_id, sweep_name = prefect_server.create_run(
        with_test_params(sweep, shared, storage=params.storage, config="configs/demo.yaml")
    )
    completed(prefect_server, sweep_id, sweep_name)
    found = artifacts(prefect_server, sweep_id)  # each checked to fit the UI
    board = found[f"{EXPERIMENT}-sweep-leaderboard"]["data"]
    rungs = found[f"{EXPERIMENT}-sweep-rungs"]["data"]
    board, rungs = (json.loads(x) if isinstance(x, str) else x for x in (board, rungs))

    first = {run["trial"]: run for run in rungs if run["rung"] == 1}
    second = {run["trial"]: run for run in rungs if run["rung"] == 2}
    assert len(first) == 4 and all(run["state"] == "Completed" for run in rungs)
    # The best half of rung 1 went on (the table's scores are rounded: ties may fall either way).
    assert len(second) == 2
    assert min(first[t]["f1"] for t in second) >= max(first[t]["f1"] for t in first if t not in second)
    for trial, run in second.items():
        # It resumed its own rung-1 run: the lineage names that run's last checkpoint, and it trained epoch 2
        # only (no checkpoint of an epoch 1 trained again). Each trial run kept the name the sweep gave it.
        parent = checkpoint_rows(prefect_server, first[trial]["flow_run"])["last"]
        own = checkpoint_rows(prefect_server, run["flow_run"])
        assert run["run"] == own["run"].rsplit("/", 1)[1]
        assert run["run"].startswith(f"{sweep_name}-trial-{trial}-rung-2-")
        assert lineage_parent(s3_server, own["last"]) == parent
        manifest = json.loads(s3_object(s3_server, f"{own['run']}/manifest.json"))
        assert manifest["parent"] == parent and manifest["checkpoints"]
        assert not any(e["epoch"] <= 1 and e["position"] == 0 for e in manifest["checkpoints"])
    # The leaderboard: each trial at its last rung, best first, with its overrides and run.
    last = {trial: second.get(trial) or first[trial] for trial in first}
    assert sorted(row["trial"] for row in board) == sorted(last)
    assert [row["f1"] for row in board] == sorted((row["f1"] for row in board), reverse=True)
    for row in board:
        run = last[row["trial"]]
        assert (row["f1"], row["epochs"], row["run"]) == (run["f1"], run["epochs"], run["run"])
        assert row["overrides"].startswith("optimizer.lr=")
    # The winner went through the promotion gate: promoted only if it beat the current best on validation.
    winner = checkpoint_rows(prefect_server, last[board[0]["trial"]]["flow_run"])["best"]
    decision = found[f"{EXPERIMENT}-promotion"]["data"]
    assert winner in decision  # behind its short name's link
    pointer = json.loads(s3_object(s3_server, f"s3://{params.bucket}/runs/{EXPERIMENT}/best.json"))
    assert (pointer["checkpoint"] == winner) == decision.startswith("## Promoted")
