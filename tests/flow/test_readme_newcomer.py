"""The README's first sections, run as printed in the order a newcomer meets them: `make demo` (made tiny
through DEMO_ARGS) and the summary it prints, the venv and TensorBoard, training and resume (shell and
Python), and `make lint`. Placeholders and tiny settings: tests/readme.py."""

import os
import re
import subprocess
from pathlib import Path

import pytest
import torch

from tests.commands import serve_tensorboard, train
from tests.readme import README, ROOT, blocks, commands, substitute, tiny

pytestmark = pytest.mark.slow
STAMP = ".venv/.installed"  # make's install step: done before any test runs, never redone inside one


def data_settings(dataset: dict) -> list[str]:
    return [f"dataset.{key}={dataset[key]}" for key in ("annotations", "dataset")] + [
        "synthetic.generate_if_missing=false"
    ]


def api_env() -> dict[str, str]:
    """This process's environment, pointed at the test session's Prefect API."""
    from prefect.settings import PREFECT_API_URL

    return {**os.environ, "PREFECT_API_URL": PREFECT_API_URL.value()}


def test_make_demo_runs_and_prints_what_the_readme_shows(prefect_harness, tiny_dataset, tmp_path):
    [demo, test] = commands("Two commands")
    assert demo == ["make", "demo"] and test == ["make", "test"]
    assert "make test" in (ROOT / ".ci/run").read_text()  # CI runs the other one
    settings = [*data_settings(tiny_dataset), *tiny(demo), f"storage.uri={tmp_path / 'runs'}"]
    done = subprocess.run(
        [*demo, "-o", STAMP, f"DEMO_ARGS={' '.join(settings)} train_params.epochs=2"],
        cwd=ROOT,
        env=api_env(),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    shown = re.search(r"then it prints:\n\n```\n(.*?)```", README.read_text(), re.S)[1]
    assert labels(done.stdout) == labels(shown)
    assert re.search(r"^validation gesture F1: \d\.\d{4} \(best \d\.\d{4}\)$", done.stdout, re.M)
    assert list((tmp_path / "runs" / "demo").glob("*/best_model.pth"))


def labels(summary: str) -> list[str]:
    return re.findall(r"^([a-zA-Z ]+):", summary, re.M)


def test_the_venv_activates_and_tensorboard_serves_the_demo(trained_run):
    activate, tensorboard = commands("What you see")
    assert activate == ["source", ".venv/bin/activate"]
    found = subprocess.run(
        ["bash", "-c", f"{' '.join(activate)} && command -v handgesture tensorboard prefect"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={k: v for k, v in os.environ.items() if k != "VIRTUAL_ENV"},
    )
    assert found.returncode == 0 and found.stdout.split() == [
        str(ROOT / ".venv/bin" / name) for name in ("handgesture", "tensorboard", "prefect")
    ]
    summary, _ = trained_run
    run = Path(summary.run_uri)
    command = " ".join(substitute(tensorboard, {"runs/demo": str(run.parent)}))
    assert run.name in serve_tensorboard(command, {run.name})


def test_the_training_section_runs_as_printed(prefect_harness, tiny_dataset, tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)  # configs/demo.yaml is relative, as printed
    storage = [f"storage.uri={tmp_path / 'runs'}"]
    like_tutorial, demo, resume = commands("Training and resume")
    first = train(like_tutorial[2:] + data_settings(tiny_dataset) + tiny(like_tutorial) + storage)
    assert first.epochs == 1
    assert torch.load(first.last_checkpoint, weights_only=True)["model_name"] == "ResNet18"
    second = train(demo[2:] + data_settings(tiny_dataset) + tiny(demo) + storage)
    assert second.epochs == 3 and second.run_uri.startswith(str(tmp_path / "runs" / "demo"))
    resume = substitute(resume, {"runs/demo/<run>": second.run_uri})
    continued = train(resume[2:] + storage)
    assert continued.resumed_from == second.last_checkpoint
    assert continued.epochs == 5 and [row["epoch"] for row in continued.history] == [1, 2, 3, 4, 5]

    [snippet] = blocks("Training and resume", "python")
    settings = [*data_settings(tiny_dataset), *tiny(snippet.split()), *storage]
    appended = ", ".join(f'"{s}"' for s in settings)
    code = snippet.replace('"train_params.epochs=2"]', f'"train_params.epochs=2", {appended}]')
    assert code != snippet
    namespace = {}
    exec(code, namespace)  # noqa: S102 - the README's own snippet, with tiny settings appended
    assert namespace["result"].epochs == 2 and namespace["result"].metrics["gesture/f1_score"] >= 0


def test_make_lint_passes():
    [lint, mutants] = commands("Reference and development")
    assert lint == ["make", "lint"] and mutants[:2] == [".venv/bin/python", "scripts/mutants.py"]
    done = subprocess.run([*lint, "-o", STAMP], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
