"""The mutation harness itself: a mutant the named tests catch is killed, one they miss survives (and fails
the harness), and the README's printed `--only` command runs as printed."""

import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

import mutants  # noqa: E402

pytestmark = pytest.mark.slow
FLIPPED = "tests/unit/checkpoints/test_checkpoint.py::test_named_checkpoint_with_flipped_byte_is_an_error"
DOWNLOAD = "src/handgesture/storage/download.py"


def test_an_edit_must_match_exactly_one_place():
    ambiguous = mutants.Mutant("every docstring quote", "-", DOWNLOAD, (mutants.edit('"""', "'''"),))
    with pytest.raises(SystemExit, match="occurs"):
        mutants.run(ambiguous, [FLIPPED])


def test_a_mutant_the_tests_miss_survives_and_one_they_catch_is_killed():
    reworded = mutants.Mutant(
        "a docstring reworded", "-", DOWNLOAD, (mutants.edit("Local copies", "Copies"),)
    )
    assert mutants.run(reworded, [FLIPPED])[0] == "survived"
    [checksum] = [m for m in mutants.MUTANTS if m.name == "checksum check skipped"]
    outcome, _, failed = mutants.run(checksum, [FLIPPED])
    assert outcome == "killed" and "FAILED tests/unit/checkpoints/test_checkpoint.py" in failed


def test_the_readme_s_only_command_runs_as_printed():
    readme = (ROOT / "README.md").read_text()
    line = re.search(r"^\.venv/bin/python scripts/mutants\.py --only .*$", readme, re.M)[0]
    words = shlex.split(line, comments=True)
    done = subprocess.run([sys.executable, *words[1:]], cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "checksum check skipped" in done.stdout and "1 of 1 killed" in done.stdout
