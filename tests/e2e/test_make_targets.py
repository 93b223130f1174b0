"""The README's deployment block as printed: `make server`, `make deploy`, `make worker`, `make run` (the
plumbing check) and `make ui`, each the make target itself against one fresh server on a free port
(PREFECT_PORT, which the targets honour). The resume line, `make run PARAMS=...`, is run by
tests/e2e/test_deployments.py. Placeholders and tiny settings: tests/readme.py."""

import json
import subprocess

import pytest

from tests.e2e.docs import with_test_params
from tests.e2e.servers import ROOT, PrefectServer, new_home
from tests.readme import commands
from tests.tiny import tiny_dotlist

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
STAMP = ".venv/.installed"  # installed before any test runs: a target never reinstalls inside one
SECTION = "Deployments and scheduled retraining"


@pytest.fixture
def server():
    server = PrefectServer(new_home())
    server.env["PREFECT_PORT"] = str(server.port)  # what the targets build PREFECT_API_URL from
    del server.env["PREFECT_API_URL"]  # as in a fresh terminal: the targets set it themselves
    yield server
    server.stop()


def make(server: PrefectServer, target: list[str]) -> subprocess.CompletedProcess:
    done = subprocess.run(
        [target[0], "-o", STAMP, *target[1:]], cwd=ROOT, env=server.env, capture_output=True, text=True
    )
    assert done.returncode == 0, f"{target} exited {done.returncode}:\n{done.stdout}{done.stderr}"
    return done


def test_the_readme_make_targets_run_a_deployment_end_to_end(server, tiny_dataset, tmp_path):
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
