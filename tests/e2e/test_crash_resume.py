"""Real processes, really killed: no checkpoint ever fails to load, and the final state equals a clean run."""

import json
import os
import random
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from handgesture.checkpoints.locate import resolve_checkpoint
from handgesture.config import load_config
from handgesture.training import run_training
from tests.unit.training.test_resume import assert_identical, final_state

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


@pytest.fixture
def overrides(tiny_overrides):
    # Later overrides win: loader workers on, and a checkpoint at every step to kill around.
    return tiny_overrides + [
        "train_params.num_workers=2",
        "checkpoint.every_n_steps=1",
        "checkpoint.keep_last=3",
    ]


def start_worker(overrides, run_name):
    spec = json.dumps({"overrides": overrides, "run_name": run_name})
    return subprocess.Popen(
        [sys.executable, "-m", "tests.train_worker", spec],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_for_commits(run: Path, at_least: int, proc, timeout=120.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        manifest = run / "manifest.json"
        if manifest.exists():
            try:
                entries = json.loads(manifest.read_text())["checkpoints"]
            except json.JSONDecodeError:
                entries = []  # never happens with atomic writes; a torn manifest would fail the final check
            if entries and entries[-1]["global_step"] >= at_least:
                return
        time.sleep(0.05)


def every_checkpoint_loads(run: Path):
    for path in sorted((run / "checkpoints").glob("*.pth")) + [run / "best_model.pth"]:
        if path.exists():
            torch.load(path, weights_only=True)
    resolve_checkpoint(str(run))  # the run folder resolves to a checkpoint that verifies


def test_sigterm_checkpoints_at_the_next_step_and_the_rerun_finishes_identically(overrides, tmp_path):
    straight = run_training(
        load_config("configs/demo.yaml", overrides),
        run_name="straight",
    )
    run = tmp_path / "runs" / "demo" / "preempted"
    proc = start_worker(overrides, "preempted")
    wait_for_commits(run, 5, proc)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode != 0
    assert "TrainingPreempted" in err and "stopped on SIGTERM after committing" in err
    committed = re.search(r"stopped on SIGTERM after committing (\S+\.pth)", err)[1]
    newest = json.loads((run / "manifest.json").read_text())["checkpoints"][-1]
    assert committed == newest["uri"] and Path(committed).is_file()  # the step it stopped at is committed
    every_checkpoint_loads(run)

    rerun = start_worker(overrides, "preempted")
    out, err = rerun.communicate(timeout=300)
    assert rerun.returncode == 0, err
    assert_identical(
        final_state(straight.last_checkpoint),
        final_state(json.loads(out.splitlines()[-1])["last_checkpoint"]),
    )


@pytest.mark.parametrize("seed", [1, 2])
def test_kill_9_at_random_points_never_loses_a_checkpoint(overrides, tmp_path, seed):
    straight = run_training(load_config("configs/demo.yaml", overrides), run_name="straight")
    rng = random.Random(seed)
    run = tmp_path / "runs" / "demo" / "killed"
    kills = 0
    for _ in range(6):  # kill a few times, then let it finish
        proc = start_worker(overrides, "killed")
        if kills < 2:
            wait_for_commits(run, rng.randint(1, 24), proc)
            time.sleep(rng.uniform(0.0, 0.3))  # sometimes mid-step, sometimes mid-write
            if proc.poll() is None:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait()
                kills += 1
                every_checkpoint_loads(run) if (run / "manifest.json").exists() else None
                continue
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err
        break
    assert kills >= 1
    every_checkpoint_loads(run)
    assert_identical(
        final_state(straight.last_checkpoint),
        final_state(json.loads(out.splitlines()[-1])["last_checkpoint"]),
    )
