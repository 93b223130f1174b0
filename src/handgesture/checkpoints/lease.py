"""A run folder's owner: a lease (`lease.json`) in the store, local or S3, renewed by a heartbeat.

Two writers in one run folder destroy each other's results, so the folder has one owner at a time. Taking the
lease is one conditional write (create-if-absent; replace-if-unchanged), so of two racing writers exactly one
wins; the other fails at once, naming the folder and its owner. A lease its owner stopped renewing (a crash,
a lost machine) goes stale after `ttl` seconds, or at once when the owner was a process on this host that is
gone: that is how a re-run after kill -9 continues its run. The same owner (a retried task of the same flow
run) takes its own lease back.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable

from handgesture.errors import InputError, StorageError
from handgesture.storage import Store

log = logging.getLogger(__name__)
LEASE = "lease.json"


class RunFolderBusyError(InputError):
    """Another live writer owns the run folder."""


class LeaseLostError(RuntimeError):
    """This writer no longer owns its run folder (another one took it over)."""


def default_owner(flow_run_id: str | None) -> str:
    """A flow run owns its folder across its task's retries; a plain process owns it alone."""
    return f"flow-run-{flow_run_id}" if flow_run_id else f"process-{uuid.uuid4().hex[:12]}"


class RunLease:
    def __init__(self, store: Store, owner: str, ttl: float = 60.0, clock: Callable[[], float] = time.time):
        self.store, self.owner, self.ttl, self.clock = store, owner, ttl, clock
        self.token = uuid.uuid4().hex  # this holder: two holders of one owner name still differ
        self.lost: str | None = None  # why the lease was lost, once it was
        self._version: str | None = None
        self._stop = threading.Event()
        self._heartbeat: threading.Thread | None = None

    def acquire(self) -> None:
        """Own the folder, or raise RunFolderBusyError naming the folder and its live owner."""
        if self.store.create_exclusive(self._record(), LEASE):
            self._version = self.store.read_versioned(LEASE)[1]
        else:
            self._take_over()
        self._heartbeat = threading.Thread(target=self._beat, name="handgesture-lease", daemon=True)
        self._heartbeat.start()

    def _take_over(self) -> None:
        found = self.store.read_versioned(LEASE)
        if found is not None:
            holder, version = json.loads(found[0]), found[1]
            if holder["owner"] != self.owner and not self._is_stale(holder):
                age = self.clock() - holder["renewed_at"]
                raise RunFolderBusyError(
                    f"run folder {self.store.root} is in use by {holder['owner']} (pid {holder['pid']} on "
                    f"{holder['host']}, renewed {age:.0f} s ago): give this run another storage.run_name"
                )
            if self.store.replace_if(self._record(), LEASE, version):
                log.info("took over the lease of %s from %s", self.store.root, holder["owner"])
                self._version = self.store.read_versioned(LEASE)[1]
                return
        elif self.store.create_exclusive(self._record(), LEASE):
            self._version = self.store.read_versioned(LEASE)[1]
            return
        raise RunFolderBusyError(
            f"run folder {self.store.root}: another writer took its lease at the same time"
        )

    def _is_stale(self, holder: dict) -> bool:
        if self.clock() - holder["renewed_at"] > holder.get("ttl", self.ttl):
            return True
        return holder["host"] == socket.gethostname() and not _alive(holder["pid"])

    def _record(self) -> bytes:
        record = {"owner": self.owner, "host": socket.gethostname(), "pid": os.getpid(), "token": self.token}
        return json.dumps({**record, "renewed_at": self.clock(), "ttl": self.ttl}).encode()

    def _beat(self) -> None:
        while not self._stop.wait(self.ttl / 4):
            try:
                self.renew()
            except StorageError as exc:  # an outage: keep trying; once back, renew() sees who owns it
                log.warning("cannot renew the lease of %s: %s", self.store.root, exc)
            if self.lost:
                return

    def renew(self) -> None:
        if self._version is None or not self.store.replace_if(self._record(), LEASE, self._version):
            found = self.store.read_versioned(LEASE)
            owner = json.loads(found[0])["owner"] if found else "nobody"
            self.lost = f"the lease of run folder {self.store.root} was taken over by {owner}"
            log.error("%s: this run stops at its next checkpoint", self.lost)
            return
        self._version = self.store.read_versioned(LEASE)[1]

    def check(self) -> None:
        """Raise in the training thread once the folder is someone else's: never write into it then."""
        if self.lost:
            raise LeaseLostError(self.lost)

    def release(self) -> None:
        self._stop.set()
        if self._heartbeat is not None:
            self._heartbeat.join()
        if self.lost or self._version is None:
            return
        try:
            found = self.store.read_versioned(LEASE)
            if found is not None and found[1] == self._version:
                self.store.delete(LEASE)
        except StorageError as exc:  # an outage: the lease goes stale after its ttl instead
            log.warning(
                "could not give back the lease of %s (stale in %.0f s): %s", self.store.root, self.ttl, exc
            )


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True
