"""Running the commands a run prints (summary, report) as a user would copy them."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path

import httpx

BIN = Path(sys.executable).parent


def printed(output: str, label: str) -> str:
    """The command after `label` in the summary a run printed."""
    return re.search(rf"^{re.escape(label)}\s+(.*)$", output, re.M)[1].strip()


def split_env(command: str) -> tuple[dict[str, str], list[str]]:
    """`A=1 B=2 prog args` -> ({A: 1, B: 2}, [prog, args])."""
    words = shlex.split(command)
    env = {}
    while words and re.match(r"^[A-Z_][A-Z0-9_]*=", words[0]):
        key, _, value = words.pop(0).partition("=")
        env[key] = value
    return env, words


def train(argv: list[str]):
    """`python flows/train.py ARGV` (that is `handgesture train ARGV`) in this process (the test's Prefect
    API), its summary printed; returns its RunSummary (None on a node without rank 0). Bad input raises."""
    from handgesture_cli.flow_commands import run_training
    from handgesture_cli.main import parse

    return run_training(parse(["train", *argv]))


def run_flow_command(command: str, *extra: str):
    """A printed `python flows/train.py ...` command, run by `train`."""
    env, words = split_env(command)
    assert not env and words[:2] == ["python", "flows/train.py"], command
    return train(words[2:] + list(extra))


def run_cli_command(command: str, cwd: Path) -> str:
    """A printed `handgesture ...` command, run as the installed command in `cwd`; returns its stdout."""
    env, words = split_env(command)
    assert words[0] == "handgesture", command
    done = subprocess.run(
        [str(BIN / "handgesture"), *words[1:]],
        cwd=cwd,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, f"{command} exited {done.returncode}:\n{done.stderr[-3000:]}"
    return done.stdout


def serve_tensorboard(command: str, expected: set[str], deadline: float = 120.0) -> set[str]:
    """Start the printed tensorboard command (on a free port); the run folders it serves scalars of, once
    `expected` are among them (or the deadline passed)."""
    env, words = split_env(command)
    assert words[0] == "tensorboard", command
    words[0] = str(BIN / "tensorboard")
    proc = subprocess.Popen(
        [*words, "--port", "0", "--host", "127.0.0.1"],
        env={**os.environ, **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        url = _served_url(proc, time.monotonic() + deadline)
        return _runs(url, expected, time.monotonic() + deadline)
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def _served_url(proc: subprocess.Popen, deadline: float) -> str:
    for line in proc.stderr:
        found = re.search(r"(http://[^\s/]+/)", line)
        if found:
            return found[1]
        if time.monotonic() > deadline:
            break
    raise AssertionError(f"tensorboard did not start (exit {proc.poll()})")


def _runs(url: str, expected: set[str], deadline: float) -> set[str]:
    """TensorBoard loads event files in the background: poll until the expected runs are there."""
    while True:
        tags = httpx.get(f"{url}data/plugin/scalars/tags", timeout=10).json()
        served = {run.split("/")[0] for run in tags}  # "<run folder>/tensorboard"
        if expected <= served or time.monotonic() > deadline:
            return served
        time.sleep(0.5)
