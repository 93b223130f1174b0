"""Background uploads to a remote store: training never waits on the network, and an outage loses nothing.

Each upload is first written to a local spool file by one thread; another uploads them in commit order
(checkpoint, then best_model.pth, then the manifest), so the remote manifest never names an object that is not
there.
A server that cannot be reached is retried with capped backoff; the spool copy is deleted only once its
upload is confirmed, so a run that gives up still has every checkpoint on local disk.
"""

from __future__ import annotations

import itertools
import logging
import queue
import shutil
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote, unquote

from handgesture.errors import InputError, StorageError, StorageUnreachableError
from handgesture.storage import Store
from handgesture.storage.base import PARTIAL
from handgesture.storage.local import atomic_target

log = logging.getLogger(__name__)


@dataclass
class _Job:
    keys: list[str]
    spooled: Path | None = None  # None: delete the keys
    done: threading.Event = field(default_factory=threading.Event)


class BackgroundUploader:
    def __init__(self, store: Store, spool_dir: Path, max_backoff: float = 30.0):
        self.store, self.spool_dir, self.max_backoff = store, spool_dir, max_backoff
        self.fatal: Exception | None = None  # an InputError from the store, or a spool write failure
        self.last_outage: StorageError | None = None  # the last retried failure, named in a timeout error
        self._jobs: queue.Queue[_Job] = queue.Queue()
        self._pending: list[_Job] = []
        self._sequence = itertools.count()
        self._stopped = threading.Event()
        self._spooler = ThreadPoolExecutor(1, thread_name_prefix="handgesture-spool")
        self._thread = threading.Thread(target=self._work, name="handgesture-uploader", daemon=True)
        self._thread.start()

    def put_bytes(self, data: bytes, keys: list[str]) -> None:
        """Queue ``data`` for ``keys``; it is written to the spool, then uploaded, by background threads."""
        self._enqueue(_Job(keys, self._spool_path(keys)), lambda path: path.write_bytes(data))

    def put_file(self, local_path: Path, key: str) -> None:
        """Snapshot `local_path` (it may keep growing, like an event file) and upload the snapshot."""
        self._enqueue(_Job([key], self._spool_path([key])), lambda path: shutil.copyfile(local_path, path))

    def delete(self, key: str) -> None:
        self._enqueue(_Job([key]), None)

    def check(self) -> None:
        """Raise, in the training thread, an error the uploader cannot get past (credentials, bucket)."""
        if self.fatal is not None:
            # The same class, so the task's retry decision (InputError or not) sees what went wrong.
            raise type(self.fatal)(f"{self.fatal}; {self._kept()}") from self.fatal

    def flush(self, timeout: float) -> None:
        """Wait until every queued upload is confirmed; past `timeout`, fail naming what stays local."""
        deadline = time.monotonic() + timeout
        for job in list(self._pending):
            while not job.done.wait(0.2):
                self.check()
                if time.monotonic() > deadline:
                    self._stopped.set()
                    # An outage stays an outage (retryable by the task); the spool copies survive it.
                    outage = isinstance(self.last_outage, StorageUnreachableError)
                    error = StorageUnreachableError if outage else StorageError
                    cause = f" ({self.last_outage})" if self.last_outage else ""
                    raise error(
                        f"uploads to {self.store.describe()} not confirmed within {timeout:.0f} s{cause}; "
                        f"{self._kept()}"
                    )

    def close(self, timeout: float) -> None:
        """Flush, then let the upload thread end."""
        try:
            self.flush(timeout)
        finally:
            self._stopped.set()
            self._spooler.shutdown(wait=True)  # spool copies are written even when uploads gave up
            self._jobs.put(_Job([]))  # wakes the thread so it sees the stop

    def _spool_path(self, keys: list[str]) -> Path:
        """Commit order, then every key the copy goes to: enough to finish the upload after a crash."""
        return self.spool_dir / f"{next(self._sequence):06d}-{'+'.join(quote(k, safe='') for k in keys)}"

    def _enqueue(self, job: _Job, write: Callable[[Path], object] | None) -> None:
        # The spool thread keeps commit order and hands each job on to the upload thread, so a training step
        # waits for neither the disk nor the network.
        self.check()
        self._pending = [j for j in self._pending if not j.done.is_set()] + [job]
        self._spooler.submit(self._spool, job, write)

    def _spool(self, job: _Job, write: Callable[[Path], object] | None) -> None:
        if write is not None and self.fatal is None:
            try:
                # Not fsynced: a spool copy only has to outlive the process (a new process re-commits from
                # its own checkpoints rather than re-uploading an old spool).
                with atomic_target(job.spooled, durable=False) as temporary:
                    write(temporary)
            except Exception as exc:  # a disk error, or a vanished source: the run must hear of it
                log.error("cannot write the upload spool copy %s: %s", job.spooled, exc)
                self.fatal = StorageError(f"cannot write the upload spool copy {job.spooled}: {exc}")
                return
        self._jobs.put(job)

    def _kept(self) -> str:
        pending = [j.spooled for j in self._pending if j.spooled and not j.done.is_set()]
        kept = sorted(
            str(path) for path in pending if path.exists()
        )  # a copy the full disk never took is none
        return f"local copies kept until uploaded: {', '.join(kept) or 'none'}"

    def _work(self) -> None:
        while not self._stopped.is_set():
            job = self._jobs.get()
            backoff = 1.0
            while self.fatal is None and not self._stopped.is_set():
                try:
                    self._run(job)
                    break
                except InputError as exc:  # credentials, bucket, key: waiting cannot fix them
                    log.error("upload of %s failed and will not be retried: %s", job.keys, exc)
                    self.fatal = exc
                except StorageError as exc:
                    self.last_outage = exc
                    log.warning(
                        "upload of %s waits for storage (retry in %.0f s): %s", job.keys, backoff, exc
                    )
                    self._stopped.wait(backoff)
                    backoff = min(backoff * 2, self.max_backoff)
            if self.fatal is None and not self._stopped.is_set():
                job.done.set()

    def _run(self, job: _Job) -> None:
        if job.spooled is None:
            for key in job.keys:
                self.store.delete(key)
            return
        for key in job.keys:
            self.store.put_file(job.spooled, key)
        job.spooled.unlink()


def recover_spool(store: Store, spool_dir: Path) -> int:
    """Upload, in commit order, what a stopped process left in `spool_dir`: copies it had committed but not
    uploaded (kill -9, a lost machine). Returns how many; an outage leaves them for the next attempt."""
    if not spool_dir.is_dir():
        return 0
    recovered = 0
    for leftover in sorted(spool_dir.iterdir()):
        if leftover.name.endswith(PARTIAL):  # a copy that was being written: it was never committed
            leftover.unlink(missing_ok=True)
            continue
        keys = [unquote(key) for key in leftover.name.partition("-")[2].split("+")]
        for key in keys:
            store.put_file(leftover, key)
        leftover.unlink()
        recovered += 1
    if recovered:
        log.warning("uploaded %d copies a stopped run left in its spool %s", recovered, spool_dir)
    return recovered
