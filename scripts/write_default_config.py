"""Write configs/default.yaml from the schema: its defaults in its key order, each field's comment beside its
value (`handgesture.config.doc`). The schema is the one source of both; the file is what a user reads.

    .venv/bin/python scripts/write_default_config.py [PATH]   # PATH: configs/default.yaml unless given

tests/unit/test_config_defaults.py fails when the file in the tree is not what this writes.
"""

from __future__ import annotations

import dataclasses
import json
import sys
import textwrap
from pathlib import Path
from typing import Any

import yaml

from handgesture.config import COMMENT, DEFAULT_CONFIG, HEADER, Config, to_dict

COMMAND = ".venv/bin/python scripts/write_default_config.py"
NOTICE = (
    f"Written by `{COMMAND}` from the defaults and comments in\n"
    "src/handgesture/config.py: edit them there, then run it again."
)
COLUMN = 44  # where comments start, so they read as one column beside the values
WIDTH = 110  # the repository's line length: a longer flow list wraps


def render(config: Config) -> str:
    """The YAML text: the header, then every key of `config` with its value and comment."""
    header = [f"# {line}" for line in f"{HEADER}\n{NOTICE}".splitlines()]
    text = "\n".join(header + _section(config, "")) + "\n"
    # The file must load back to exactly these values (a float or string YAML would read differently).
    if yaml.safe_load(text) != to_dict(config):
        raise ValueError("the rendered YAML does not load back to the schema's defaults")
    return text


def _section(config: Any, indent: str) -> list[str]:
    lines = []
    for field in dataclasses.fields(config):
        value = getattr(config, field.name)
        key = f"{indent}{field.name}:"
        comment = field.metadata.get(COMMENT, "")
        if dataclasses.is_dataclass(value):
            lines += _beside([key], comment, indent) + _section(value, indent + "  ")
        else:
            lines += _beside(_value(key, value), comment, indent)
    return lines


def _beside(lines: list[str], comment: str, indent: str) -> list[str]:
    """`lines` with `comment` beside the first, its further lines below in the same column; above the key
    when the value does not leave room (a wrapped list)."""
    notes = [f"# {line}" for line in comment.splitlines()]
    if not notes:
        return lines
    if len(lines) > 1 or len(lines[0]) > COLUMN - 2:
        return [f"{indent}{note}" for note in notes] + lines
    return [f"{lines[0]:<{COLUMN}}{notes[0]}"] + [" " * COLUMN + note for note in notes[1:]]


def _value(key: str, value: Any) -> list[str]:
    if not isinstance(value, list):
        return [f"{key} {_scalar(value)}"]
    items = ", ".join(_scalar(item) for item in value) + "]"
    # A long list wraps with its items aligned under the first, as a person would write it.
    first = f"{key} ["
    return textwrap.wrap(
        items,
        WIDTH,
        initial_indent=first,
        subsequent_indent=" " * len(first),
        break_long_words=False,
        break_on_hyphens=False,
    )


def _scalar(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))  # 300 seconds, as a person writes it; the schema's float type reads it back
    if isinstance(value, int | float):
        return repr(value)
    # Plain where YAML reads the text back as this string (inside a flow list too), else quoted.
    return value if yaml.safe_load(f"[{value}]") == [value] else json.dumps(value)


def main(argv: list[str]) -> None:
    path = Path(argv[0]) if argv else DEFAULT_CONFIG
    path.write_text(render(Config()))
    print(f"wrote {path}")


if __name__ == "__main__":
    main(sys.argv[1:])
