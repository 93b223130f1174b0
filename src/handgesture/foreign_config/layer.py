"""One foreign config layer being read as ours: its data (a copy), where it came from, and every refusal."""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger("handgesture.foreign_config")


@dataclass
class Layer:
    data: dict[str, Any]
    source: str
    refused: list[str] = field(default_factory=list)

    def refuse(self, key: str, reason: str) -> None:
        """`key` cannot be mapped; the reason goes into the one error that lists them all."""
        self.refused.append(f"{key}: {reason}")

    def put(self, dotted: str, value: Any) -> None:
        """Set our key `dotted` unless the layer sets it itself (our own spelling wins over theirs)."""
        *parents, last = dotted.split(".")
        node = self.data
        for part in parents:
            if not isinstance(node.get(part), dict):
                node[part] = {}
            node = node[part]
        node.setdefault(last, value)

    def pop_block(self, key: str) -> dict[str, Any] | None:
        """The mapping at top-level `key`, removed; None when absent or not a mapping (left to the schema)."""
        if not isinstance(self.data.get(key), dict):
            return None
        return self.data.pop(key)

    def keep_rest(self, key: str, block: dict[str, Any]) -> None:
        """What is left of `block` goes back under `key`, so the schema check names each leftover key."""
        if block:
            self.data[key] = block

    def note(self, message: str, *args: Any) -> None:
        log.info("%s: " + message, self.source, *args)


def close(value: Any, expected: Any) -> bool:
    """`value` is the number (or list of numbers) `expected`, up to float rounding."""
    if isinstance(expected, list):
        return isinstance(value, list) and len(value) == len(expected) and all(map(close, value, expected))
    return isinstance(value, int | float) and math.isclose(value, expected, rel_tol=1e-9, abs_tol=1e-12)
