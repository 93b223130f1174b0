"""A data-parallel run's epoch ends, passed from rank 0's process to the caller's `on_epoch`.

The ranks are processes of their own, so the caller's callback (the train task's progress artifact) cannot
run in them. Rank 0 writes each finished epoch to a file in a folder the launcher made; a thread in the
caller's process reads them and calls `on_epoch`, in the caller's context (Prefect's run context included),
in epoch order, each once. The last epochs are passed on before the launch returns.
"""

from __future__ import annotations

import contextvars
import json
import logging
import threading
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

from handgesture.training.engine import Progress

log = logging.getLogger(__name__)
EpochCallback = Callable[[Progress, dict[str, float]], None]
POLL_SECONDS = 0.5


def epoch_writer(folder: Path) -> EpochCallback:
    """Rank 0's `on_epoch`: the epoch's progress and metrics, as `epoch-<n>.json` (written whole, then
    renamed, so the reader never sees half a file)."""

    def write(progress: Progress, metrics: dict[str, float]) -> None:
        record = json.dumps({"progress": asdict(progress), "metrics": metrics})
        temporary = folder / f".epoch-{progress.epoch}.json"
        temporary.write_text(record)
        temporary.replace(folder / f"epoch-{progress.epoch}.json")

    return write


class EpochRelay:
    """While open, calls `on_epoch` for each epoch file rank 0 writes to `folder`; on close, for the rest."""

    def __init__(self, folder: Path, on_epoch: EpochCallback | None):
        self.folder, self.on_epoch = folder, on_epoch
        self._passed: set[int] = set()
        self._closing = threading.Event()
        self._lock = threading.Lock()  # the thread and the closing drain never pass one epoch twice
        self._thread = threading.Thread(
            target=contextvars.copy_context().run, args=(self._watch,), name="handgesture-epochs", daemon=True
        )

    def __enter__(self) -> EpochRelay:
        if self.on_epoch:
            self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self.on_epoch:
            self._closing.set()
            self._thread.join()
            self._pass_on()

    def _watch(self) -> None:
        while not self._closing.wait(POLL_SECONDS):
            self._pass_on()

    def _pass_on(self) -> None:
        with self._lock:
            for epoch, path in sorted(
                (int(p.stem.split("-")[1]), p) for p in self.folder.glob("epoch-*.json")
            ):
                if epoch in self._passed:
                    continue
                self._passed.add(epoch)
                record = json.loads(path.read_text())
                try:
                    self.on_epoch(Progress(**record["progress"]), record["metrics"])
                except Exception as exc:  # a progress display that fails must not stop the training
                    log.warning("on_epoch failed for epoch %d: %s", epoch, exc)
