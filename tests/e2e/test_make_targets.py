"""The README's deployment block as printed: `make server`, `make deploy`, `make worker`, `make run` (the
plumbing check) and `make ui`, each the make target itself against one fresh server on a free port
(PREFECT_PORT, which the targets honour); then docs/deployments.md's run into S3 through a saved block, with
the block as the worker's only credentials. The resume line, `make run PARAMS=...`, is run by
tests/e2e/test_deployments.py. Placeholders and tiny settings: tests/readme.py."""

import json
import re
import subprocess
import sys

import pytest

from tests.e2e.docs import block, with_test_params
from tests.e2e.servers import ROOT, PrefectServer, new_home
from tests.readme import commands
from tests.tiny import tiny_dotlist

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
STAMP = ".venv/.installed"  # installed before any test runs: a target never reinstalls inside one
SECTION = "Deployments and scheduled retraining"


@pytest.fixture
def server(tmp_path):
    server = PrefectServer(new_home())
    server.env["PREFECT_PORT"] = str(server.port)  # what the targets build PREFECT_API_URL from
    del server.env["PREFECT_API_URL"]  # as in a fresh terminal: the targets set it themselves
    # No AWS credentials but a saved block's: no keys in the environment, no profile, no instance role.
    server.env = {k: v for k, v in server.env.items() if not k.startswith("AWS_")}
    (tmp_path / "no-aws-config").write_text("")
    for name in ("AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE"):
        server.env[name] = str(tmp_path / "no-aws-config")
    server.env["AWS_EC2_METADATA_DISABLED"] = "true"
    yield server
    server.stop()


def make(server: PrefectServer, target: list[str]) -> subprocess.CompletedProcess:
    done = subprocess.run(
        [target[0], "-o", STAMP, *target[1:]], cwd=ROOT, env=server.env, capture_output=True, text=True
    )
    assert done.returncode == 0, f"{target} exited {done.returncode}:\n{done.stdout}{done.stderr}"
    return done


def test_the_readme_make_targets_run_a_deployment_end_to_end(server, tiny_dataset, s3_server, tmp_path):
    start, deploy, worker, first, resume, ui = commands(SECTION)
    assert [c[:2] for c in (start, deploy, worker, first, ui)] == [
        ["make", "server"], ["make", "deploy"], ["make", "worker"], ["make", "run"], ["make", "ui"],
    ]  # fmt: skip
    server.start(command=(start[0], "-o", STAMP, *start[1:]))
    make(server, deploy)
    names = {d["name"] for d in server.api("POST", "/deployments/filter", json={}).json()}
    assert {"train", "scheduled-retrain", "evaluate", "sweep"} <= names
    server.spawn("worker", worker[0], "-o", STAMP, *worker[1:])

    settings = [*tiny_dotlist(tiny_dataset), "tracking.tensorboard=false", f"storage.uri={tmp_path / 'runs'}"]
    command = with_test_params(first, settings)
    flow_run_id, _ = server.create_run([command[0], "-o", STAMP, *command[1:]])
    run = server.wait(flow_run_id, timeout=300)
    assert run["state"]["type"] == "COMPLETED", server.flow_run_logs(flow_run_id)
    overrides = json.loads(first[-1].split("=", 1)[1])
    assert overrides == ["train_params.epochs=1"] and list((tmp_path / "runs").glob("*/*/best_model.pth"))

    shown = make(server, ui).stdout
    assert f"Prefect UI: http://127.0.0.1:{server.port}" in shown

    bucket = s3_server.create_bucket("block")
    save, run_into_s3 = block("## Runs into S3 through a block")
    assert save[:2] == ["python", "-c"] and run_into_s3[:3] == ["prefect", "deployment", "run"]
    keys = iter([s3_server.access_key, s3_server.secret_key])  # the two '…' placeholders, in order
    save[2] = re.sub("'…'", lambda _: repr(next(keys)), save[2])
    api = {**server.env, "PREFECT_API_URL": f"http://127.0.0.1:{server.port}/api"}
    done = subprocess.run([sys.executable, *save[1:]], cwd=ROOT, env=api, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    command = [word.replace("my-bucket", bucket) for word in run_into_s3]
    endpoint = f"storage.endpoint_url={s3_server.endpoint_url}"
    server.env["PREFECT_API_URL"] = api["PREFECT_API_URL"]
    flow_run_id, _ = server.create_run(with_test_params(command, [*settings[:-1], endpoint]))
    run = server.wait(flow_run_id, timeout=300)
    assert run["state"]["type"] == "COMPLETED", server.flow_run_logs(flow_run_id)
    listed = s3_server.client().list_objects_v2(Bucket=bucket, Prefix="handgesture/demo/")
    assert any(o["Key"].endswith("/best_model.pth") for o in listed.get("Contents", []))
