"""A sweep's orchestration overhead: N tiny trials through the deployments vs the same trials back to back.

    .venv/bin/python benchmarks/bench_sweep.py [--trials 4]

Starts `prefect server start` on 127.0.0.1 (its own PREFECT_HOME), the process pool, `prefect deploy` of the
train and sweep deployments and a process worker; then times the sweep deployment run (one rung, concurrency
1, so the trials run one after another as in the direct loop) from `prefect deployment run` to its completed
state, against `run_training` called for the same trials in this process.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import benchlib

benchlib.setup_env()

from handgesture.config import load_config  # noqa: E402
from handgesture.training import run_training  # noqa: E402

BIN = Path(sys.executable).parent
LRS = [0.01, 0.02, 0.03, 0.05, 0.07, 0.1, 0.2, 0.3]


def trial_overrides(data: dict, tmp: str) -> list[str]:
    return [
        *benchlib.data_overrides(data),
        f"dataset.cache_dir={tmp}/cache",
        "dataset.image_size=[32,32]",
        "model.name=MobileNetV3_small",
        "train_params.train_batch_size=16",
        "train_params.num_workers=0",
        "tracking.tensorboard=false",
    ]


def direct(overrides: list[str], lrs: list[float], storage: str) -> float:
    start = time.perf_counter()
    for lr in lrs:
        trial = [*overrides, f"optimizer.lr={lr}", "train_params.epochs=1", f"storage.uri={storage}"]
        run_training(load_config("configs/demo.yaml", trial))
    return time.perf_counter() - start


class Server:
    def __init__(self, home: Path):
        self.port = benchlib.free_port()
        self.env = {
            **os.environ,
            "PREFECT_HOME": str(home),
            "PREFECT_API_URL": f"http://127.0.0.1:{self.port}/api",
            "PREFECT_UI_ENABLED": "false",
            "PREFECT_CLI_PROMPT": "false",
            "PREFECT_WORKER_QUERY_SECONDS": "1",
            "HANDGESTURE_REPO_DIR": str(benchlib.REPO),
        }
        self.procs: list[subprocess.Popen] = []
        home.mkdir(parents=True, exist_ok=True)

    def spawn(self, *args: str) -> None:
        log = open(Path(self.env["PREFECT_HOME"]) / f"{len(self.procs)}.log", "wb")  # noqa: SIM115
        self.procs.append(subprocess.Popen(args, cwd=benchlib.REPO, env=self.env, stdout=log, stderr=log))

    def cli(self, *args: str) -> str:
        done = subprocess.run(
            [str(BIN / "prefect"), *args], cwd=benchlib.REPO, env=self.env, capture_output=True, text=True
        )
        if done.returncode:
            raise RuntimeError(f"prefect {' '.join(args)}: {done.stdout}{done.stderr}")
        return done.stdout

    def api(self, path: str) -> dict:
        with urllib.request.urlopen(f"{self.env['PREFECT_API_URL']}{path}", timeout=10) as response:
            return json.loads(response.read())

    def start(self) -> None:
        self.spawn(str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(self.port))
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                self.api("/health")
                break
            except OSError:
                time.sleep(0.5)
        self.cli("work-pool", "create", "handgesture-gpu", "--type", "process")
        self.cli("--no-prompt", "deploy", "--name", "train", "--name", "sweep")
        self.spawn(str(BIN / "prefect"), "worker", "start", "--pool", "handgesture-gpu", "--type", "process")

    def wait(self, flow_run_id: str) -> dict:
        while True:
            run = self.api(f"/flow_runs/{flow_run_id}")
            if run["state"] and run["state"]["type"] in ("COMPLETED", "FAILED", "CRASHED", "CANCELLED"):
                return run
            time.sleep(0.5)

    def stop(self) -> None:
        for proc in reversed(self.procs):
            proc.terminate()
            proc.wait(timeout=30)


def through_deployments(server: Server, overrides: list[str], lrs: list[float], storage: str) -> float:
    params = {
        "space": {"optimizer.lr": lrs},
        "rungs": [1],
        "concurrency": 1,
        "config": "configs/demo.yaml",
        "overrides": overrides,
        "storage": storage,
    }
    start = time.perf_counter()
    out = server.cli(
        "deployment", "run", "sweep-hand-gesture-classifier/sweep", "--params", json.dumps(params)
    )
    run = server.wait(re.search(r"UUID: ([0-9a-f-]{36})", out).group(1))
    seconds = time.perf_counter() - start
    if run["state"]["type"] != "COMPLETED":
        raise RuntimeError(f"the sweep ended {run['state']['type']}")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--trials", type=int, default=4)
    args = parser.parse_args()
    lrs = LRS[: args.trials]
    with tempfile.TemporaryDirectory() as tmp:
        data = benchlib.make_dataset(Path(tmp) / "data", per_class=8, frame_size=(160, 120))
        overrides = trial_overrides(data, tmp)
        direct(overrides, lrs[:1], f"{tmp}/warm-up")  # prepares the crop cache both paths then reuse
        back_to_back = direct(overrides, lrs, f"{tmp}/direct")
        server = Server(Path(tmp) / "prefect")
        try:
            server.start()
            swept = through_deployments(server, overrides, lrs, f"{tmp}/swept")
        finally:
            server.stop()
    print(f"{args.trials} trials of 1 epoch (MobileNetV3_small, 32 px), one at a time")
    print(f"back to back (run_training in one process): {back_to_back:6.1f} s")
    print(f"sweep deployment (a flow run per trial):     {swept:6.1f} s")
    print(
        f"orchestration overhead: {swept - back_to_back:+.1f} s, "
        f"{(swept - back_to_back) / args.trials:+.1f} s per trial"
    )


if __name__ == "__main__":
    main()
