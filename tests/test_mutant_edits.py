"""The mutation harness stays runnable as the code moves: each mutant's edit still matches exactly one place,
each names a row of docs/guarantees.md's Guarantees table, each row has a mutant, and each test a row names
exists. (Running the mutants themselves takes minutes: `make mutants`, outside CI.)"""

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

import mutants  # noqa: E402

ROWS = mutants.guarantee_rows(ROOT / "docs/guarantees.md")


@pytest.mark.parametrize("mutant", mutants.MUTANTS, ids=lambda m: m.name)
def test_each_mutant_edit_matches_one_place_and_names_a_row(mutant):
    text = (ROOT / mutant.path).read_text()
    for old, _ in mutant.edits:
        assert text.count(old) == 1, f"{mutant.name}: {old!r} occurs {text.count(old)} times in {mutant.path}"
    assert mutants.tests_of(mutant.row, ROWS)


def test_each_guarantee_row_has_a_mutant_and_names_tests_that_exist():
    for row, tests in ROWS.items():
        assert any(row.startswith(m.row) for m in mutants.MUTANTS), f"no mutant breaks {row!r}"
        for test in tests:
            path, _, name = test.partition("::")
            assert (ROOT / path).exists(), f"{row!r} names {path}, which does not exist"
            if name:
                function = name.split("[")[0]
                assert f"def {function}(" in (ROOT / path).read_text(), f"{row!r} names {test}: no such test"
