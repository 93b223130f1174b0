"""The Prefect settings `make demo` relies on are the programs' own defaults, so a printed command typed into
a fresh shell behaves as the demo did; a Prefect server that does not start is one line naming the setting."""

import os
import subprocess
import sys
from pathlib import Path

import flows.settings as settings

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def _fresh_env(tmp_path, **extra) -> dict[str, str]:
    """A shell without any of the settings (or a Prefect API), with its own Prefect home."""
    env = {k: v for k, v in os.environ.items() if k not in settings.DEFAULTS and k != "PREFECT_API_URL"}
    return {**env, "PREFECT_HOME": str(tmp_path / "prefect-home"), **extra}


def test_the_defaults_apply_unless_the_user_set_them(tmp_path):
    code = "import os, flows.settings as s; print(*(os.environ[k] for k in s.DEFAULTS))"
    env = _fresh_env(tmp_path, PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS="300")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    values = dict(zip(settings.DEFAULTS, out.stdout.split(), strict=True))
    assert values == {**settings.DEFAULTS, "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "300"}


def test_every_flow_module_and_the_command_apply_them_before_prefect():
    assert "import flows.settings" in (ROOT / "handgesture_cli/main.py").read_text()
    for path in ROOT.glob("flows/*.py"):
        text = path.read_text()
        if "@flow" in text:  # a flow module: run as a script, or loaded by a worker
            assert text.index("import flows.settings") < text.index("\nfrom prefect"), path


def test_a_server_that_does_not_start_in_time_is_one_line_naming_the_setting(tmp_path):
    # One second is far less than the ephemeral server's start (importing Prefect's server alone takes more).
    env = _fresh_env(tmp_path, PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS="1")
    argv = [str(BIN / "handgesture"), "train", "--config", "configs/demo.yaml", "--epochs", "1"]
    done = subprocess.run(
        [*argv, f"storage.uri={tmp_path / 'runs'}"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 1
    errors = [line for line in done.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS" in errors[0]
    assert "Traceback" not in done.stderr and not (tmp_path / "runs").exists()
