"""One source of defaults: the schema holds each default and the comment a user reads beside it, and
configs/default.yaml is what scripts/write_default_config.py writes from them."""

from __future__ import annotations

import dataclasses
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

from handgesture.config import COMMENT, DEFAULT_CONFIG, Config

ROOT = Path(__file__).resolve().parents[2]
# As docs/reference.md and the file's own header print it.
REGENERATE = ".venv/bin/python scripts/write_default_config.py"


def test_default_yaml_is_what_the_schema_writes(tmp_path):
    """The printed command, run as printed (this interpreter for .venv/bin/python), given a path to write
    instead of the tree's file."""
    written = tmp_path / "default.yaml"
    _, script = shlex.split(REGENERATE)
    done = subprocess.run([sys.executable, script, str(written)], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    assert DEFAULT_CONFIG.read_text() == written.read_text(), (
        "configs/default.yaml is not what the schema (src/handgesture/config.py) writes: edit the defaults "
        f"and comments there, not the file, then regenerate it with `{REGENERATE}`"
    )
    assert f"`{REGENERATE}`" in written.read_text()
    assert f"`{REGENERATE}`" in (ROOT / "docs/reference.md").read_text()


def test_every_schema_value_has_the_comment_a_user_reads_beside_it():
    missing = [key for key, field in _values(Config()) if not field.metadata.get(COMMENT, "").strip()]
    assert not missing, f"give these fields a comment, `doc(default, comment)`: {missing}"


def _values(section: Any, prefix: str = "") -> list[tuple[str, dataclasses.Field]]:
    """(dotted key, field) for every value of the schema; sections are walked, not listed."""
    found = []
    for field in dataclasses.fields(section):
        value = getattr(section, field.name)
        if dataclasses.is_dataclass(value):
            found += _values(value, f"{prefix}{field.name}.")
        else:
            found.append((f"{prefix}{field.name}", field))
    return found
