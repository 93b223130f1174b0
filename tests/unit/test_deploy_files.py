"""The shipping files: the Kubernetes GPU template is prefect-kubernetes' default plus the GPU additions, the
image installs the pinned dependencies and the package, prefect.yaml's deployments are what the docs list."""

import json
import os
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "deploy/kubernetes-gpu-job-template.json"


def default_kubernetes_template(tmp_path) -> dict:
    prefect = Path(sys.executable).with_name("prefect")
    env = {**os.environ, "PREFECT_HOME": str(tmp_path), "PREFECT_API_URL": ""}
    done = subprocess.run(
        [str(prefect), "work-pool", "get-default-base-job-template", "--type", "kubernetes"],
        capture_output=True, text=True, env=env, timeout=120, check=True,
    )  # fmt: skip
    return json.loads(done.stdout)


def test_kubernetes_template_is_the_default_plus_the_gpu(tmp_path):
    default, ours = default_kubernetes_template(tmp_path), json.loads(TEMPLATE.read_text())
    spec = ours["job_configuration"]["job_manifest"]["spec"]["template"]["spec"]
    container = spec["containers"][0]
    for kind in ("limits", "requests"):
        assert container["resources"][kind].pop("nvidia.com/gpu") == "{{ gpu_count }}"
    assert container.pop("volumeMounts") == [{"name": "dshm", "mountPath": "/dev/shm"}]
    assert spec.pop("volumes") == [{"name": "dshm", "emptyDir": {"medium": "Memory"}}]
    assert spec.pop("tolerations") == [
        {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
    ]
    gpu_count = ours["variables"]["properties"].pop("gpu_count")
    assert gpu_count["type"] == "integer" and gpu_count["default"] == 1
    assert ours == default  # nothing else differs from prefect-kubernetes' own template


def test_the_image_installs_the_pinned_dependencies_and_the_package():
    lines = [line.strip() for line in (ROOT / "Dockerfile").read_text().splitlines()]
    assert lines.index("COPY requirements.lock ./") < lines.index("RUN pip install -r requirements.lock")
    assert "RUN pip install --no-deps -e . && handgesture --help > /dev/null" in lines
    copied = {"src", "handgesture_cli", "flows", "tasks", "configs"}  # what the editable install needs
    assert {f"COPY {name} ./{name}" for name in copied} <= set(lines)
    assert "WORKDIR /opt/handgesture" in lines  # where the image deployments' pull step changes into
    assert {".venv", "runs", "data"} <= set((ROOT / ".dockerignore").read_text().split())


def test_prefect_yaml_deploys_what_the_docs_list():
    config = yaml.safe_load((ROOT / "prefect.yaml").read_text())
    deployments = {d["name"]: d for d in config["deployments"]}
    assert set(deployments) == {
        "train",
        "scheduled-retrain",
        "evaluate",
        "sweep",
        "train-docker",
        "train-kubernetes",
        "train-from-git",
    }
    pools = {name: d["work_pool"]["name"] for name, d in deployments.items()}
    assert (
        pools["train-docker"] == "handgesture-docker"
        and pools["train-kubernetes"] == "handgesture-kubernetes"
    )
    for name in ("train-docker", "train-kubernetes"):
        [build] = deployments[name]["build"]
        assert build["prefect_docker.deployments.steps.build_docker_image"]["dockerfile"] == "Dockerfile"
        assert "prefect_docker.deployments.steps.push_docker_image" in deployments[name]["push"][0]
    clone = deployments["train-from-git"]["pull"][0]["prefect.deployments.steps.git_clone"]
    assert clone["repository"] == "{{ $HANDGESTURE_GIT_URL }}"
    docs = (ROOT / "docs/deployments.md").read_text()
    assert all(
        f"`{d['entrypoint'].split(':')[0]}`" in docs and name in docs for name, d in deployments.items()
    )


def test_the_multi_node_job_trains_one_run_across_its_pods():
    from handgesture_cli.main import parse

    from handgesture.config import flow_overrides, load_config

    service, job = yaml.safe_load_all((ROOT / "deploy/kubernetes-ddp-job.yaml").read_text())
    spec = job["spec"]
    pod = spec["template"]["spec"]
    [container] = pod["containers"]
    assert container["command"][:2] == ["handgesture", "train"]  # the flow, as `handgesture train` runs it
    args = parse(container["command"][1:])
    config = load_config(None, flow_overrides(args.overrides, args.storage))  # every key valid
    params = config.train_params
    assert params.nnodes == spec["completions"] == spec["parallelism"] and config.storage.run_name
    # Pod 0 hosts the rendezvous: its DNS name is <job>-0.<subdomain>, the headless Service selects the pods.
    host, port = params.rdzv_endpoint.split(":")
    assert host == f"{job['metadata']['name']}-0.{pod['subdomain']}"
    assert pod["subdomain"] == service["metadata"]["name"] and service["spec"]["clusterIP"] == "None"
    assert service["spec"]["selector"] == {"job-name": job["metadata"]["name"]}
    assert int(port) == service["spec"]["ports"][0]["port"] == container["ports"][0]["containerPort"]
    assert spec["completionMode"] == "Indexed" and params.devices == "auto"


def test_the_dask_section_parses_and_its_address_is_a_valid_prepare_dask(monkeypatch):
    import ast
    import re
    import shlex

    from handgesture.config import load_config

    docs = (ROOT / "docs/deployments.md").read_text()
    section = docs.split("### Prepare on a Dask cluster", 1)[1].split("\n## ", 1)[0]
    [cluster] = [yaml.safe_load(b) for b in re.findall(r"```yaml\n(.*?)```", section, re.S)]
    assert cluster["kind"] == "DaskCluster" and cluster["apiVersion"].startswith("kubernetes.dask.org/")
    assert cluster["spec"]["scheduler"]["service"]["ports"][0]["port"] == 8786
    for block in re.findall(r"```python\n(.*?)```", section, re.S):
        ast.parse(block)
    [command] = re.findall(r"```bash\n(.*?)```", section, re.S)
    dask = next(w for w in shlex.split(command) if w.startswith("prepare.dask="))
    name = cluster["metadata"]["name"]
    assert dask.startswith(f"prepare.dask=tcp://{name}-scheduler.")
    # The worker's environment lists the scheduler, as the section tells its operator to.
    [listed] = re.findall(r"HANDGESTURE_DASK_SCHEDULERS=([^`\s]+)", section)
    assert listed == dask.split("=", 1)[1]
    monkeypatch.setenv("HANDGESTURE_DASK_SCHEDULERS", listed)
    assert load_config(None, [dask]).prepare.dask.endswith(":8786")
