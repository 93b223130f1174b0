"""Data-parallel training on CPU: 2 gloo ranks launched by torchrun's elastic launcher, tiny models.

Exact resume at the same world size, every sample exactly once across a change of world size, a SIGTERM to
one rank stopping all of them at one committed step, and a killed rank failing the run so that a rerun
continues from the last checkpoint.
"""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from handgesture.errors import ConfigError
from handgesture.evaluation import evaluate_checkpoint
from handgesture.training import run_training
from handgesture.training.distributed import RankInputError
from tests.unit.training.test_resume import assert_identical, final_state

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow
TWO = "train_params.devices=2"


def traced(trace: Path) -> dict[int, list[list[int]]]:
    """Each rank's training batches, as lists of dataset indices, from a HANDGESTURE_SAMPLE_TRACE folder."""
    ranks = {}
    for path in sorted(trace.glob("rank-*.txt")):
        lines = [list(map(int, line.split())) for line in path.read_text().splitlines()]
        ranks[int(path.stem.split("-")[1])] = lines
    return ranks


def indices(batches: list[list[int]], epoch: int) -> list[int]:
    return [i for line in batches if line[0] == epoch for i in line[1:]]


def manifest(run_uri: str) -> dict:
    return json.loads((Path(run_uri) / "manifest.json").read_text())


def test_two_ranks_two_epochs_equal_one_plus_resumed_one(tiny_config, tmp_path):
    epoch_ends = []
    straight = run_training(
        tiny_config(TWO), run_name="straight", on_epoch=lambda p, m: epoch_ends.append((p.epoch, m))
    )
    first = run_training(tiny_config(TWO, "train_params.epochs=1"), run_name="first")
    resumed = run_training(tiny_config(TWO), run_name="resumed", resume=first.last_checkpoint)

    assert resumed.resumed_from == first.last_checkpoint
    assert_identical(final_state(straight.last_checkpoint), final_state(resumed.last_checkpoint))
    assert resumed.history == straight.history
    assert epoch_ends == []  # on_epoch is for single-process runs: the ranks are processes of their own
    # Two ranks take global batches of 2 x 16: half the steps of one rank's epoch.
    one = run_training(tiny_config("train_params.epochs=1"), run_name="one")
    assert first.global_step == one.global_step // 2
    # Each rank validated its shard; the all-reduced figures are those of one process on the whole split.
    report = evaluate_checkpoint(first.last_checkpoint, tiny_config(), tmp_path / "eval", split="val")
    sharded = first.history[-1]
    for head, scores in report.weighted.items():
        for name, value in scores.items():
            assert sharded[f"{head}/{name}"] == pytest.approx(value, abs=1e-6), f"{head}/{name}"


def test_a_two_rank_checkpoint_resumed_on_one_rank_sees_each_sample_once(tiny_config, tmp_path, monkeypatch):
    settings = ("train_params.epochs=1", "checkpoint.every_n_steps=1", "checkpoint.keep_last=100")
    monkeypatch.setenv("HANDGESTURE_SAMPLE_TRACE", str(tmp_path / "single"))
    (tmp_path / "single").mkdir()
    run_training(tiny_config(*settings), run_name="single")
    monkeypatch.setenv("HANDGESTURE_SAMPLE_TRACE", str(tmp_path / "two"))
    (tmp_path / "two").mkdir()
    two = run_training(tiny_config(TWO, *settings), run_name="two")
    mid = next(e for e in manifest(two.run_uri)["checkpoints"] if e["epoch"] == 0 and e["position"] > 0)
    monkeypatch.setenv("HANDGESTURE_SAMPLE_TRACE", str(tmp_path / "resumed"))
    (tmp_path / "resumed").mkdir()
    run_training(tiny_config(*settings), run_name="resumed", resume=mid["uri"])

    ranks = traced(tmp_path / "two")
    before = [i for rank in (0, 1) for i in indices(ranks[rank][: mid["global_step"]], 0)]
    after = indices(traced(tmp_path / "resumed")[0], 0)
    assert len(before) == mid["position"] and after
    seen = before + after
    assert len(seen) == len(set(seen)), "a sample was trained on twice"
    assert sorted(seen) == sorted(indices(traced(tmp_path / "single")[0], 0)), "a sample was skipped"


def start(overrides: list[str], run_name: str, trace: Path) -> subprocess.Popen:
    spec = json.dumps({"overrides": overrides, "run_name": run_name})
    env = {**os.environ, "HANDGESTURE_SAMPLE_TRACE": str(trace)}
    trace.mkdir(exist_ok=True)
    return subprocess.Popen(
        [sys.executable, "-m", "tests.train_worker", spec],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def rank_pid(trace: Path, rank: int) -> int:
    """The pid of the process that runs `rank`, which it wrote to the trace folder, read once it trained."""
    return int((trace / f"rank-{rank}.pid").read_text())


def wait_for_batches(trace: Path, rank: int, at_least: int, launcher, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    path = trace / f"rank-{rank}.txt"
    while time.monotonic() < deadline and launcher.poll() is None:
        if path.exists() and len(path.read_text().splitlines()) >= at_least:
            return
        time.sleep(0.05)
    raise AssertionError(f"rank {rank} did not train {at_least} batches in {timeout} s")


@pytest.fixture
def long_run(tiny_overrides):
    """Long enough to signal mid-run; ranks agree every 2 steps, a checkpoint every 2 steps."""
    return [
        *tiny_overrides,
        TWO,
        "train_params.epochs=40",
        "train_params.log_every_n_steps=2",
        "checkpoint.every_n_steps=2",
        "checkpoint.keep_last=2",
    ]


def signal_rank_one(overrides: list[str], run_name: str, trace: Path, after: int, signum: int):
    """Start a 2-rank run, send `signum` to rank 1 once it trained `after` batches; (launcher, stderr)."""
    launcher = start(overrides, run_name, trace)
    wait_for_batches(trace, 1, after, launcher)
    os.kill(rank_pid(trace, 1), signum)
    _, err = launcher.communicate(timeout=300)
    return launcher, err


def test_a_sigterm_to_one_rank_stops_all_at_one_committed_step(long_run, tmp_path):
    trace = tmp_path / "trace"
    launcher, err = signal_rank_one(long_run, "preempted", trace, 3, signal.SIGTERM)

    assert launcher.returncode != 0
    assert "TrainingPreempted" in err and "stopped on SIGTERM after committing" in err, err[-3000:]
    ranks = traced(trace)
    assert len(ranks[0]) == len(ranks[1]), "the ranks stopped at different steps"
    newest = manifest(str(tmp_path / "runs" / "demo" / "preempted"))["checkpoints"][-1]
    assert newest["global_step"] == len(ranks[0]) and newest["global_step"] % 2 == 0


def test_a_killed_rank_fails_the_run_and_a_rerun_continues_from_its_last_checkpoint(long_run, tmp_path):
    overrides = [*long_run, "train_params.epochs=3"]
    launcher, err = signal_rank_one(overrides, "crashed", tmp_path / "trace", 5, signal.SIGKILL)
    assert launcher.returncode != 0
    assert "data-parallel training failed on rank" in err, err[-3000:]
    run = tmp_path / "runs" / "demo" / "crashed"
    committed = manifest(str(run))["checkpoints"][-1]["global_step"]
    assert committed >= 4

    rerun = start(overrides, "crashed", tmp_path / "rerun-trace")
    out, err = rerun.communicate(timeout=300)
    assert rerun.returncode == 0, err[-3000:]
    summary = json.loads(out.strip().splitlines()[-1])
    assert summary["epochs"] == 3
    resumed_steps = len(traced(tmp_path / "rerun-trace")[0])
    assert committed + resumed_steps == summary["global_step"]  # nothing trained twice, nothing skipped


def test_bad_input_on_a_rank_reaches_the_caller_as_bad_input(tiny_config, tmp_path):
    missing = tmp_path / "nowhere" / "best_model.pth"
    with pytest.raises(RankInputError, match=f"^rank 0: .*{missing}"):
        run_training(tiny_config(TWO), resume=str(missing))  # raised in rank 0's process, not retried
    with pytest.raises(ConfigError, match="sync_bn=true needs CUDA devices"):
        run_training(tiny_config(TWO, "train_params.sync_bn=true", "device=cpu"))
    with pytest.raises(ConfigError, match="train_params.devices"):
        tiny_config("train_params.devices=0")
