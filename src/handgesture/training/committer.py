"""When to take a checkpoint, and taking it: each epoch, every N steps / T seconds, and on SIGTERM.

A preempted worker gets SIGTERM and a grace period; we checkpoint at the next step boundary and stop with
`TrainingPreempted`, so the retried task (or the re-run flow run) continues from that exact step.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from handgesture.checkpoints.run_folder import RunFolder
from handgesture.config import CheckpointConfig
from handgesture.metrics import BEST_METRIC
from handgesture.training.engine import Progress

log = logging.getLogger(__name__)


class TrainingPreempted(RuntimeError):
    """Training stopped on request (SIGTERM) after committing a checkpoint; a retry continues from it."""


class Committer:
    """Commits checkpoints of the live training state (`dump(metrics)`) to the run folder."""

    def __init__(
        self,
        dump: Callable[[dict[str, float]], dict[str, Any]],
        run: RunFolder,
        policy: CheckpointConfig,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.dump, self.run, self.policy, self.clock = dump, run, policy, clock
        self.last_commit_time = clock()
        self.stop_requested = False

    def after_step(self, progress: Progress) -> None:
        """Called at every step boundary: the only place a mid-epoch checkpoint is consistent."""
        if self.stop_requested:
            entry = self.commit({})
            raise TrainingPreempted(f"stopped on SIGTERM after committing {entry['uri']}")
        every_n, every_t = self.policy.every_n_steps, self.policy.every_seconds
        due_by_steps = every_n > 0 and progress.global_step % every_n == 0
        due_by_time = every_t > 0 and self.clock() - self.last_commit_time >= every_t
        if due_by_steps or due_by_time:
            self.commit({})

    def commit(self, metrics: dict[str, float]) -> dict[str, Any]:
        """Commit now; `metrics` are the validation metrics at an epoch end, empty mid-epoch."""
        run_best = self.run.manifest.get("best")
        # best_model.pth is the best of this run's folder (a resumed run starts a folder of its own).
        is_best = BEST_METRIC in metrics and (
            run_best is None or metrics[BEST_METRIC] > run_best["metrics"].get(BEST_METRIC, -1.0)
        )
        entry = self.run.commit(self.dump(metrics), is_best=is_best)
        self.last_commit_time = self.clock()
        log.debug("committed %s", entry["uri"])
        return entry

    def request_stop(self, signum: int, _frame: Any = None) -> None:
        log.warning("received signal %d: checkpointing at the next step boundary, then stopping", signum)
        self.stop_requested = True


@contextmanager
def stop_on_sigterm(committer: Committer) -> Iterator[None]:
    """Route SIGTERM to `committer` while training; signal handlers exist only in the main thread."""
    if threading.current_thread() is not threading.main_thread():
        log.info("not in the main thread: SIGTERM will not trigger a final checkpoint")
        yield
        return
    previous = signal.signal(signal.SIGTERM, committer.request_stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
