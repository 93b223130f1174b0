"""Every command block in the README has a test that runs it as printed, with only the listed placeholders
swapped (tests/readme.py), and the README stays a newcomer's page."""

import re
from pathlib import Path

from tests.e2e.docs import block as docs_block
from tests.readme import PLACEHOLDERS, README, ROOT, RUN_BY, blocks, sections

# A word that stands for something of the reader's: <...>, an absolute data or mount path, a bucket, a key.
PLACEHOLDER_LIKE = re.compile(r"<[^>]+>|^/(data|mnt)/\S+|my-bucket|'…'|node0:\d+")


def test_every_section_with_a_command_block_has_a_test_that_runs_it():
    with_blocks = {name for name, text in sections().items() if re.search(r"^```(bash|python)$", text, re.M)}
    assert with_blocks == set(RUN_BY), "a README section's commands need a test that runs them (RUN_BY)"
    for name, tests in RUN_BY.items():
        for test in tests.split():
            path, function = test.split("::")
            assert f"def {function}(" in (ROOT / path).read_text(), f"{name}: {test} does not exist"


def test_every_placeholder_in_a_command_is_listed_with_what_replaces_it():
    for name in RUN_BY:
        for text in blocks(name):
            for word in text.split():
                for found in PLACEHOLDER_LIKE.finditer(word):
                    assert any(p in word for p in PLACEHOLDERS), f"{name}: {found[0]!r} in {word!r}"


def test_the_deployment_block_is_the_one_the_e2e_test_runs():
    """The README's deployment commands are docs/deployments.md's, whose block tests/e2e runs."""
    readme = [line for line in blocks("Deployments and scheduled retraining")[0].splitlines() if line]
    docs = Path(ROOT / "docs/deployments.md").read_text().split("## Commands", 1)[1]
    docs_lines = re.search(r"```bash\n(.*?)```", docs, re.S)[1].splitlines()
    assert readme and set(readme) <= set(docs_lines)
    assert docs_block("## Commands")  # the block tests/e2e/test_deployments.py reads


def test_the_readme_is_a_newcomers_page():
    lines = README.read_text().splitlines()
    assert len(lines) <= 260, f"README.md has {len(lines)} lines: move reference material to docs/"
    headings = [line[3:] for line in lines if line.startswith("## ")]
    path = ["Two commands", "What you see", "Training and resume", "Your own HaGRID", "Checkpoints in S3"]
    path += ["Deployments and scheduled retraining", "Use the model: evaluate, predict, export"]
    assert headings[: len(path)] == path, "the README follows a newcomer's path"
    for link in re.findall(r"\]\(((?:docs/|BENCHMARKS)[^)#]*)", README.read_text()):
        assert (ROOT / link).is_file(), f"README links to {link}, which does not exist"
