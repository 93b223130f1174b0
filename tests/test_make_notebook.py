"""`make notebook` opens examples/notebook.ipynb: the target runs as printed (installing Jupyter Notebook into
.venv on first use), with arguments that keep the server on loopback and no browser, until the server serves
the notebook and its page; then it is stopped."""

import os
import signal
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from tests.s3_fixtures import free_port

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[1]
# Given a file, Jupyter serves the file's folder: the notebook is at its root, and its kernel starts there.
NOTEBOOK = "notebook.ipynb"


@pytest.mark.timeout(600)
def test_make_notebook_serves_the_example_notebook(tmp_path):
    port, token = free_port(), "handgesture-test"
    args = f"--no-browser --ip 127.0.0.1 --port {port} --IdentityProvider.token={token}"
    # Jupyter's own state (runtime files, config) in tmp_path, not the user's home.
    env = {
        **os.environ,
        "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime"),
        "JUPYTER_CONFIG_DIR": str(tmp_path),
    }
    with open(tmp_path / "make.log", "wb") as log:
        proc = subprocess.Popen(
            ["make", "notebook", f"NOTEBOOK_ARGS={args}"],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # make and the server it starts: one group, stopped together
        )
    try:
        base = f"http://127.0.0.1:{port}"
        contents = _when_served(proc, f"{base}/api/contents/{NOTEBOOK}?token={token}", tmp_path / "make.log")
        assert contents["type"] == "notebook" and contents["content"]["cells"]
        page = httpx.get(f"{base}/notebooks/{NOTEBOOK}?token={token}", timeout=30)
        assert page.status_code == 200 and "<html" in page.text.lower()
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=60)


def _when_served(proc: subprocess.Popen, url: str, log: Path, timeout: float = 420.0) -> dict:
    """The URL's JSON once the server answers it (the first run installs Jupyter first: minutes)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"make notebook exited {proc.returncode}:\n{log.read_text()[-4000:]}"
        try:
            response = httpx.get(url, timeout=5)
        except httpx.HTTPError:  # not listening yet
            time.sleep(0.5)
            continue
        assert response.status_code == 200, f"{url}: {response.status_code} {response.text[:300]}"
        return response.json()
    raise AssertionError(f"{url} not served within {timeout} s:\n{log.read_text()[-4000:]}")
