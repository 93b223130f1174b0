"""Fixtures that run a real S3-compatible server (``moto_server``) on 127.0.0.1 for the test session.

Credentials are dummies. They are never written to ``os.environ`` for the session: ``s3_env`` (used by
``s3_bucket``) sets them through ``monkeypatch`` for one test at a time, for code that uses the default AWS
credential chain.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

MOTO_SERVER = Path(sys.executable).parent / "moto_server"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class MotoServer:
    """A ``moto_server`` subprocess that can be stopped and started again on the same port (state is lost)."""

    access_key = "testing-access-key"
    secret_key = "testing-secret-key-do-not-leak"
    region = "us-east-1"

    def __init__(self, port: int | None = None):
        self.port = port or free_port()
        self.endpoint_url = f"http://127.0.0.1:{self.port}"
        self._proc: subprocess.Popen | None = None
        self._log = tempfile.TemporaryFile()  # noqa: SIM115 - the server's output, kept for its lifetime

    def start(self, timeout: float = 30.0) -> None:
        if self.running:
            return
        cmd = [str(MOTO_SERVER), "-H", "127.0.0.1", "-p", str(self.port)]
        self._proc = subprocess.Popen(cmd, stdout=self._log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise RuntimeError(f"moto_server exited with {self._proc.returncode}: {self._output()}")
            try:
                urllib.request.urlopen(f"{self.endpoint_url}/moto-api/", timeout=1).close()
                return
            except (urllib.error.URLError, OSError):
                time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"moto_server did not answer on {self.endpoint_url} within {timeout}s")

    def stop(self) -> None:
        if self._proc is not None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
            self._proc = None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def _output(self) -> str:
        self._log.seek(0)
        return self._log.read().decode(errors="replace")[-2000:]

    def client(self, **config):
        import boto3
        from botocore.config import Config

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint_url,
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
            region_name=self.region,
            config=Config(**config) if config else None,
        )

    def create_bucket(self, prefix: str = "test") -> str:
        name = f"{prefix}-{uuid.uuid4().hex[:12]}"
        self.client().create_bucket(Bucket=name)
        return name

    def env(self) -> dict[str, str]:
        return {
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
            "AWS_DEFAULT_REGION": self.region,
        }

    @contextmanager
    def auth_enforced(self) -> Iterator[None]:
        """Make the server check signatures (unknown keys and wrong secrets get 403) inside the block."""
        previous = self._set_auth("0")
        try:
            yield
        finally:
            self._set_auth(previous)

    def _set_auth(self, count: str) -> str:
        req = urllib.request.Request(
            f"{self.endpoint_url}/moto-api/reset-auth",
            data=count.encode(),
            headers={"Content-Type": "text/plain"},  # a form content type makes moto answer 500
        )
        with urllib.request.urlopen(req, timeout=5) as resp:
            return json.load(resp)["PREVIOUS_INITIAL_NO_AUTH_ACTION_COUNT"]


@pytest.fixture(scope="session")
def s3_server() -> Iterator[MotoServer]:
    server = MotoServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()


_AWS_ENV_TO_CLEAR = (
    "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE",
    "AWS_SESSION_TOKEN",
    "AWS_SECURITY_TOKEN",
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_S3",
    "AWS_ROLE_ARN",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
)


@pytest.fixture
def s3_env(s3_server: MotoServer, monkeypatch: pytest.MonkeyPatch, tmp_path_factory) -> MotoServer:
    """The dummy credentials in the environment for this test only; no user profile or role can leak in."""
    for name in _AWS_ENV_TO_CLEAR:
        monkeypatch.delenv(name, raising=False)
    empty = tmp_path_factory.mktemp("aws-config") / "none"
    monkeypatch.setenv("AWS_CONFIG_FILE", str(empty))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(empty))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    for name, value in s3_server.env().items():
        monkeypatch.setenv(name, value)
    if not s3_server.running:  # a fault test may have stopped it
        s3_server.start()
    return s3_server


@pytest.fixture
def s3_bucket(s3_env: MotoServer) -> str:
    """A fresh, uniquely named bucket on the session's server (credentials in the env for this test)."""
    return s3_env.create_bucket()
