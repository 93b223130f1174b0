"""Real processes for the deployment tests: `prefect server start` on loopback, a process worker, the CLI.

Everything talks over 127.0.0.1; each server gets its own PREFECT_HOME (and so its own SQLite database).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from tests.s3_fixtures import free_port

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
TERMINAL = {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}


class PrefectServer:
    def __init__(self, home: Path, extra_env: dict[str, str] | None = None):
        self.port = free_port()
        self.api_url = f"http://127.0.0.1:{self.port}/api"
        self.home = home
        self.env = {
            **os.environ,
            "PREFECT_HOME": str(home),
            "PREFECT_API_URL": self.api_url,
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "DO_NOT_TRACK": "1",
            "PREFECT_UI_ENABLED": "false",
            "PREFECT_CLI_PROMPT": "false",
            "PREFECT_LOGGING_LEVEL": "INFO",
            "PREFECT_WORKER_QUERY_SECONDS": "1",
            "PREFECT_WORKER_PREFETCH_SECONDS": "5",
            "HANDGESTURE_REPO_DIR": str(ROOT),
            **(extra_env or {}),
        }
        self.env.pop("PREFECT_PROFILES_PATH", None)
        self._procs: list[tuple[subprocess.Popen, Path]] = []

    def spawn(self, name: str, *args: str) -> subprocess.Popen:
        log = self.home / f"{name}.log"
        with open(log, "wb") as out:
            proc = subprocess.Popen(args, cwd=ROOT, env=self.env, stdout=out, stderr=subprocess.STDOUT)
        self._procs.append((proc, log))
        return proc

    def start(self, timeout: float = 120.0, command: tuple[str, ...] = ()) -> None:
        """Start the server (by `command`, else `prefect server start`) and wait until its API answers."""
        default = (str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(self.port))
        proc = self.spawn("server", *(command or default))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"prefect server exited {proc.returncode}: {self.logs('server')}")
            try:
                if httpx.get(f"{self.api_url}/health", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        raise RuntimeError(f"prefect server not healthy within {timeout}s: {self.logs('server')}")

    def start_worker(self, pool: str) -> subprocess.Popen:
        return self.spawn(
            "worker", str(BIN / "prefect"), "worker", "start", "--pool", pool, "--type", "process"
        )

    def cli(
        self, *args: str, check: bool = True, timeout: float = 120, env: dict | None = None
    ) -> subprocess.CompletedProcess:
        done = subprocess.run(
            [str(BIN / "prefect"), *args],
            cwd=ROOT,
            env={**self.env, **(env or {})},
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if check and done.returncode != 0:
            raise AssertionError(
                f"prefect {' '.join(args)} exited {done.returncode}:\n{done.stdout}{done.stderr}"
            )
        return done

    def run_command(self, command: list[str]) -> str:
        """A printed `prefect deployment run ...` or `make run ...` command; returns the new flow run's id."""
        return self.create_run(command)[0]

    def create_run(self, command: list[str]) -> tuple[str, str]:
        """`run_command`, returning the new flow run's id and the name the command printed for it."""
        if command[0] == "prefect":
            out = self.cli(*command[1:]).stdout
        else:
            done = subprocess.run(
                command, cwd=ROOT, env=self.env, capture_output=True, text=True, timeout=300
            )
            assert done.returncode == 0, f"{command} exited {done.returncode}:\n{done.stdout}{done.stderr}"
            out = done.stdout
        return _created(out)

    def create_run_in_shell(self, text: str) -> tuple[str, str]:
        """A command block as a report prints it (backslash-newlines, quotes), run by bash with this
        checkout's `prefect` first on PATH; the new flow run's id and printed name."""
        env = {**self.env, "PATH": f"{BIN}{os.pathsep}{self.env.get('PATH', '')}"}
        done = subprocess.run(
            ["bash", "-c", text], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
        )
        assert done.returncode == 0, f"{text}\nexited {done.returncode}:\n{done.stdout}{done.stderr}"
        return _created(done.stdout)

    def run_deployment(self, name: str, params: dict) -> str:
        """`prefect deployment run NAME --param k=v ...`; returns the new flow run's id."""
        import json

        flags = [
            f"--param={key}={json.dumps(value) if not isinstance(value, str) else value}"
            for key, value in params.items()
        ]
        out = self.cli("deployment", "run", name, *flags).stdout
        match = re.search(r"UUID: ([0-9a-f-]{36})", out)
        assert match, out
        return match.group(1)

    def artifacts(self, flow_run_id: str) -> list:
        """The flow run's artifacts as stored on this server, read back through the Prefect client."""
        import asyncio

        from prefect.client.orchestration import get_client
        from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId
        from prefect.settings import PREFECT_API_URL, temporary_settings

        async def read() -> list:
            async with get_client() as client:
                return await client.read_artifacts(
                    artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id]))
                )

        with temporary_settings({PREFECT_API_URL: self.api_url}):
            return asyncio.run(read())

    def api(self, method: str, path: str, **kwargs) -> httpx.Response:
        return httpx.request(method, f"{self.api_url}{path}", timeout=30, **kwargs)

    def wait(self, flow_run_id: str, timeout: float = 240.0) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            run = self.api("GET", f"/flow_runs/{flow_run_id}").json()
            if run["state"] and run["state"]["type"] in TERMINAL:
                return run
            time.sleep(1)
        raise AssertionError(
            f"flow run {flow_run_id} not finished in {timeout}s; worker log:\n{self.logs('worker')}"
        )

    def logs(self, name: str) -> str:
        path = self.home / f"{name}.log"
        return path.read_text(errors="replace")[-6000:] if path.exists() else ""

    def flow_run_logs(self, flow_run_id: str) -> str:
        body = {"logs": {"flow_run_id": {"any_": [flow_run_id]}}, "limit": 200}
        return "\n".join(entry["message"] for entry in self.api("POST", "/logs/filter", json=body).json())

    def stop(self) -> None:
        for proc, _ in reversed(self._procs):
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()


def _created(out: str) -> tuple[str, str]:
    """What `prefect deployment run` printed: the new flow run's id and its name."""
    match = re.search(r"Created flow run '([^']+)'.*?UUID: ([0-9a-f-]{36})", out, re.S)
    assert match, out
    return match.group(2), match.group(1)


def new_home() -> Path:
    return Path(tempfile.mkdtemp(prefix="handgesture-e2e-prefect-"))
