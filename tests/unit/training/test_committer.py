"""When checkpoints are taken: every N steps, every T seconds, and on SIGTERM."""

import os
import signal

import pytest

from handgesture.config import CheckpointConfig
from handgesture.training.committer import Committer, TrainingPreempted, stop_on_sigterm
from handgesture.training.engine import Progress


class FakeRun:
    def __init__(self):
        self.manifest = {"best": None}
        self.steps: list[int] = []

    def commit(self, checkpoint, is_best):
        self.steps.append(checkpoint["step"])
        return {"uri": f"mem://{checkpoint['step']}"}


def committer_with(policy, clock):
    progress, run = Progress(), FakeRun()
    dump = lambda metrics: {"step": progress.global_step}  # noqa: E731
    return Committer(dump, run, policy, clock=clock), progress, run


def test_every_n_steps():
    committer, progress, run = committer_with(CheckpointConfig(every_n_steps=3), clock=lambda: 0.0)
    for step in range(1, 10):
        progress.global_step = step
        committer.after_step(progress)
    assert run.steps == [3, 6, 9]


def test_every_t_seconds():
    now = [0.0]
    committer, progress, run = committer_with(CheckpointConfig(every_seconds=10), clock=lambda: now[0])
    for step in range(1, 8):
        now[0] += 4.0  # 4 s per step: due after steps 3 (12 s) and 6 (24 s)
        progress.global_step = step
        committer.after_step(progress)
    assert run.steps == [3, 6]


def test_sigterm_commits_at_the_next_step_boundary_then_stops():
    committer, progress, run = committer_with(CheckpointConfig(), clock=lambda: 0.0)
    progress.global_step = 5
    with stop_on_sigterm(committer):
        os.kill(os.getpid(), signal.SIGTERM)
        with pytest.raises(TrainingPreempted, match="mem://5"):
            committer.after_step(progress)
    assert run.steps == [5]
    assert signal.getsignal(signal.SIGTERM) is not committer.request_stop  # handler restored
