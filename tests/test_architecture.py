"""The layers hold: flows -> tasks -> library, the library's own layers, and no Prefect engine in the library.

The contracts live in pyproject.toml ([tool.importlinter]); this runs them as `make lint` does, so an import
that goes the wrong way fails the suite, naming the import chain.
"""

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_import_contracts_are_kept():
    lint_imports = Path(sys.executable).with_name("lint-imports")
    done = subprocess.run(
        [str(lint_imports), "--no-cache"], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "0 broken" in done.stdout
