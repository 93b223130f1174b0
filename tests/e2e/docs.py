"""The commands docs/deployments.md prints, as the e2e tests run them."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

DOCS = Path(__file__).resolve().parents[2] / "docs/deployments.md"


def block(after: str) -> list[list[str]]:
    """The first bash block after the text `after`, one command (split like a shell) per line."""
    text = DOCS.read_text().split(after, 1)[1]
    lines = re.search(r"```bash\n(.*?)```", text, re.S)[1].splitlines()
    return [shlex.split(line, comments=True) for line in lines if line.strip()]


def by_hand() -> list[list[str]]:
    return block("The same\nby hand")


def find(commands: list[list[str]], *words: str) -> list[list[str]]:
    """The commands that start with `words`."""
    return [command for command in commands if command[: len(words)] == list(words)]


def with_test_params(command: list[str], overrides: list[str], **params: str) -> list[str]:
    """A `prefect deployment run ...` (or `make run ...`) command with the test's settings added: its
    `overrides` list extended (the docs' values win where both set a key), other parameters added."""
    command = list(command)
    if command[0] == "make":
        given = [word.split("=", 1)[1] for word in command if word.startswith("OVERRIDES=")]
        command = [word for word in command if not word.startswith("OVERRIDES=")]
        merged = overrides + (json.loads(given[0]) if given else [])  # the docs' own values win
        extra = "".join(f" --param {key}={value}" for key, value in params.items())
        params_at = [i for i, word in enumerate(command) if word.startswith("PARAMS=")]
        if params_at:
            command[params_at[0]] += extra
        elif extra:
            command.append(f"PARAMS={extra.strip()}")
        return [*command, f"OVERRIDES={json.dumps(merged)}"]
    flags = [
        i for i, word in enumerate(command) if word == "--param" and command[i + 1].startswith("overrides=")
    ]
    merged = list(overrides)
    for i in flags:  # the docs' own values come last, so they win
        merged += json.loads(command[i + 1].split("=", 1)[1])
    for i in reversed(flags):
        del command[i : i + 2]
    command += ["--param", f"overrides={json.dumps(merged)}"]
    for key, value in params.items():
        command += ["--param", f"{key}={value}"]
    return command
