"""When to take a checkpoint, and taking it: each epoch, every N steps / T seconds, and on SIGTERM.

A preempted worker gets SIGTERM and a grace period; we checkpoint at the next step boundary and stop with
`TrainingPreempted`, so the retried task (or the re-run flow run) continues from that exact step.

In a data-parallel run, rank 0 alone writes, and the others wait for it at a barrier, so a committed
checkpoint is whole before any rank steps on. What only one rank knows (a SIGTERM it received, rank 0's
clock) is agreed on every `log_every_n_steps` steps, the steps that read the loss anyway, so all ranks
commit, or commit and stop, at the same step boundary.
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
from handgesture.cluster import SINGLE, Cluster
from handgesture.config import CheckpointConfig
from handgesture.metrics import BEST_METRIC
from handgesture.training.engine import Progress

log = logging.getLogger(__name__)


class TrainingPreempted(RuntimeError):
    """Training stopped on request (SIGTERM) after committing a checkpoint; a retry continues from it."""


class Committer:
    """Commits checkpoints of the live training state (`dump(metrics)`) to the run folder.

    On a data-parallel rank other than 0, `run` is None and `dump` only does the dump's collective part
    (settling the loss window): rank 0 writes."""

    def __init__(
        self,
        dump: Callable[[dict[str, float]], Any],
        run: RunFolder | None,
        policy: CheckpointConfig,
        clock: Callable[[], float] = time.monotonic,
        cluster: Cluster = SINGLE,
        agree_every: int = 1,
    ):
        self.dump, self.run, self.policy, self.clock = dump, run, policy, clock
        self.cluster, self.agree_every = cluster, agree_every
        self.last_commit_time = clock()
        self.stop_requested = False

    def after_step(self, progress: Progress) -> None:
        """Called at every step boundary: the only place a mid-epoch checkpoint is consistent."""
        stop, due_by_time = self._agreed(progress)
        if stop:
            entry = self.commit({})
            raise TrainingPreempted(f"stopped on SIGTERM after committing {entry['uri']}")
        every_n = self.policy.every_n_steps
        due_by_steps = every_n > 0 and progress.global_step % every_n == 0  # the same on every rank
        if due_by_steps or due_by_time:
            self.commit({})

    def _agreed(self, progress: Progress) -> tuple[bool, bool]:
        """(stop, a checkpoint is due by time): this process's own, or all ranks' at an agreement step."""
        every_t = self.policy.every_seconds
        due_by_time = every_t > 0 and self.clock() - self.last_commit_time >= every_t
        if not self.cluster.distributed:
            return self.stop_requested, due_by_time
        if progress.global_step % self.agree_every:
            return False, False
        stop, due = self.cluster.any(self.stop_requested, due_by_time and self.cluster.is_main)
        return stop, due  # the same on every rank

    def commit(self, metrics: dict[str, float]) -> dict[str, Any]:
        """Commit now; `metrics` are the validation metrics at an epoch end, empty mid-epoch."""
        if self.run is None:
            self.dump(metrics)
            entry = {"uri": "the checkpoint rank 0 wrote"}
        else:
            entry = self._write(metrics)
        self.cluster.barrier()  # no rank steps on before the checkpoint is whole
        self.last_commit_time = self.clock()
        return entry

    def _write(self, metrics: dict[str, float]) -> dict[str, Any]:
        run_best = self.run.manifest.get("best")
        # best_model.pth is the best of this run's folder (a resumed run starts a folder of its own).
        is_best = BEST_METRIC in metrics and (
            run_best is None or metrics[BEST_METRIC] > run_best["metrics"].get(BEST_METRIC, -1.0)
        )
        entry = self.run.commit(self.dump(metrics), is_best=is_best)
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
