"""The README's command blocks, and the one place that says how the tests run them small.

Each README section with a command block has a test that runs that block as printed (RUN_BY). A test
changes a printed command in two ways only, both listed here: it puts a real path, bucket or id where the
README shows a placeholder (PLACEHOLDERS), and it appends settings that make a run take seconds (TINY, and
the test's own storage). tests/test_readme_blocks.py checks that every block has its test and every
placeholder is listed, so a command added to the README without a test fails the suite.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"

# What the README prints -> what a test puts there (by the name in the test's `values`).
PLACEHOLDERS = {
    "/data/hagrid/ann_train_val": "v1 training annotations (the tiny synthetic set's)",
    "/data/hagrid/ann_test": "v1 test annotations",
    "/data/hagrid/images": "v1 images",
    "/data/hagridv2/hagrid_annotations/train": "v2 train split",
    "/data/hagridv2/hagrid_annotations/val": "v2 val split",
    "/data/hagridv2/hagrid_annotations/test": "v2 test split",
    "/data/hagridv2/hagrid_dataset": "v2 frames",
    "/mnt/checkpoints": "a storage folder in the test's tmp_path",
    "runs/demo/<run>": "a run the test trained",
    "runs/demo": "the experiment folder of that run",
    "data/synthetic/": "that run's synthetic data",
    "work_dir/ResNet18/<run>": "the run the v2 resume wrote",
    "my-bucket": "a bucket on the test's moto server",
    "<run>": "a run in that bucket",
    "'…'": "the moto server's keys",
    "node0:29400": "127.0.0.1 and a free port",
    "<flow-run-id>": "a flow run of the e2e test's server (docs/deployments.md's block, run by the e2e test)",
}

# Appended to a printed training command (with the test's data and storage): small images and model, no
# loader processes. Epochs stay as printed; a command that prints none trains 1, not the default 10.
TINY = [
    "dataset.image_size=[32,32]",
    "model.name=MobileNetV3_small",
    "train_params.train_batch_size=8",
    "train_params.num_workers=0",
    "scheduler.warmup_steps=5",
]


def tiny(command: list[str]) -> list[str]:
    """TINY for `command`, less the model where the command names one (it is what the command shows)."""
    names_model = "--model" in command or any(word.startswith("model.name=") for word in command)
    names_epochs = "--epochs" in command or any("train_params.epochs=" in word for word in command)
    settings = [s for s in TINY if not (names_model and s.startswith("model.name="))]
    return settings if names_epochs else [*settings, "train_params.epochs=1"]


# README section -> the test that runs its blocks as printed.
NEWCOMER = "tests/flow/test_readme_newcomer.py::"
RUN_BY = {
    "Two commands": NEWCOMER + "test_make_demo_runs_and_prints_what_the_readme_shows",
    "What you see": NEWCOMER + "test_the_venv_activates_and_tensorboard_serves_the_demo",
    "Training and resume": NEWCOMER + "test_the_training_section_runs_as_printed",
    "Your own HaGRID": "tests/flow/test_readme_hagrid.py::test_the_hagrid_section_runs_as_printed "
    "tests/flow/test_readme_hagrid_v2.py::test_the_hagrid_v2_section_runs_as_printed",
    "Straight from the archives or S3": "tests/s3/test_readme_sources.py::"
    "test_the_data_in_archives_section_runs_as_printed",
    "Checkpoints in S3": "tests/s3/test_readme_s3.py::test_the_s3_section_runs_as_printed",
    "Deployments and scheduled retraining": "tests/e2e/test_make_targets.py::"
    "test_the_readme_make_targets_run_a_deployment_end_to_end "
    "tests/test_readme_blocks.py::test_the_deployment_block_is_the_one_the_e2e_test_runs",
    "Use the model: evaluate, predict, export": "tests/flow/test_readme_use.py::"
    "test_the_use_section_runs_as_printed",
    "More than one GPU": "tests/flow/test_readme_data_parallel.py::"
    "test_the_data_parallel_commands_run_as_printed",
    "Reference and development": NEWCOMER + "test_make_lint_passes "
    "tests/test_mutants.py::test_the_readme_s_only_command_runs_as_printed",
}


def sections() -> dict[str, str]:
    """Heading (## or ###) -> its text, up to the next heading of either level."""
    parts = re.split(r"^#{2,3} (.+)$", README.read_text(), flags=re.M)
    return dict(zip(parts[1::2], parts[2::2], strict=True))


def blocks(section: str, lang: str = "bash") -> list[str]:
    """The section's fenced blocks of `lang`, continuation lines joined."""
    found = re.findall(rf"^```{lang}\n(.*?)^```", sections()[section], re.S | re.M)
    return [block.replace("\\\n", " ") for block in found]


def commands(section: str, block: int = 0) -> list[list[str]]:
    """One command per line of the section's `block`-th bash block, split as a shell would."""
    lines = blocks(section)[block].splitlines()
    return [shlex.split(line, comments=True) for line in lines if shlex.split(line, comments=True)]


def substitute(command: list[str], values: dict[str, str]) -> list[str]:
    """`command` with each placeholder in `values` replaced, in one pass (longest first, so `runs/demo/<run>`
    wins over `runs/demo`, and a replacement is never replaced again). Only listed placeholders may be."""
    unknown = set(values) - set(PLACEHOLDERS)
    assert not unknown, f"not a README placeholder (add it to PLACEHOLDERS): {unknown}"
    if not values:
        return list(command)
    pattern = re.compile("|".join(re.escape(p) for p in sorted(values, key=len, reverse=True)))
    return [pattern.sub(lambda found: values[found[0]], word) for word in command]
