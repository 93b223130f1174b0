"""docs/architecture.md names real code: every `module.name` it draws exists, so the page a newcomer reads
first cannot drift from the code."""

import importlib
import re
from pathlib import Path

from handgesture.config import Config

DOC = Path(__file__).resolve().parents[2] / "docs" / "architecture.md"
FILE_SUFFIXES = {"py", "md", "json", "bin", "npy", "yaml", "toml", "pth", "jpg"}
REFERENCE = re.compile(r"\b((?:[a-z_]+/)*[a-z_]+)\.([A-Za-z_]\w*)")


def named_code() -> list[tuple[str, str]]:
    found = REFERENCE.findall(DOC.read_text())
    return [(module, name) for module, name in found if name not in FILE_SUFFIXES]


def test_every_module_and_name_the_architecture_page_draws_exists():
    names = named_code()
    assert len(names) > 20, names  # the page draws both routes through the code
    missing = [f"{module}.{name}" for module, name in names if not _exists(module, name)]
    assert not missing, f"docs/architecture.md names code that does not exist: {missing}"


def _exists(module: str, name: str) -> bool:
    """`data/cache.cache_key` is handgesture.data.cache's; `torch.load` is torch's; `dataset.cache_uri` is a
    config key."""
    if hasattr(Config(), module):
        return hasattr(getattr(Config(), module), name)
    for path in ("handgesture." + module.replace("/", "."), module.replace("/", ".")):
        try:
            return hasattr(importlib.import_module(path), name)
        except ModuleNotFoundError:
            continue
    return False
