"""A run folder's owner: a lease (`lease.json`) in the store, local or S3, renewed by a heartbeat.

Two writers in one run folder destroy each other's results, so the folder has one owner at a time. Taking the
lease is one conditional write (create-if-absent; replace-if-unchanged), so of two racing writers exactly one
wins; the other fails at once, naming the folder and its owner. A lease its owner stopped renewing (a crash,
a lost machine) goes stale after `ttl` seconds, or at once when the owner was a process on this host that is
gone: that is how a re-run after kill -9 continues its run. The same owner (a retried task of the same flow
run) takes its own lease back.

A lease record is data from outside (another host, or anyone who can write the folder): one that is not a
lease record is an error naming the file, and the time it claims is bounded (`MAX_TTL`, `_age`), so no record
blocks a folder longer than an hour.
"""

from __future__ import annotations

import json
import logging
import math
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
# The longest ttl a lease record is believed for. Our writers record 60 s (renewed every 15 s); no config sets
# it. An hour is far above any ttl a writer of ours records, and bounds how long a dead holder on another
# host (or a forged record) keeps a folder: after that a re-run takes the folder over.
MAX_TTL = 3600.0
_FIELDS = {"owner": str, "host": str, "pid": int, "renewed_at": float}  # and an optional "ttl"


class RunFolderBusyError(InputError):
    """Another live writer owns the run folder."""


class MalformedLeaseError(InputError):
    """The run folder's lease.json is not a lease record: retrying cannot help, someone must look at it."""


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
            holder, version = parse_lease(found[0], self.store.uri(LEASE)), found[1]
            if holder["owner"] != self.owner and not self._is_stale(holder):
                age = self._age(holder)
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
        # The holder's own ttl decides (it renews every ttl / 4 of its own), never the taker's.
        ttl = min(holder.get("ttl", self.ttl), MAX_TTL)
        if self._age(holder) > ttl or holder["renewed_at"] - self.clock() > ttl:
            # The second: a renewal further ahead than a whole ttl is no clock skew but a record no live
            # holder on a sane clock writes; treating it as "now" at every look would keep it live for ever.
            return True
        return holder["host"] == socket.gethostname() and not _alive(holder["pid"])

    def _age(self, holder: dict) -> float:
        """Seconds since the holder renewed; a renewal in the future (another host's clock) counts as now."""
        return self.clock() - min(holder["renewed_at"], self.clock())

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
            owner = _owner_of(found[0], self.store.uri(LEASE)) if found else "nobody"
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


def parse_lease(data: bytes, uri: str) -> dict:
    """The lease record `data` read from `uri`, or MalformedLeaseError naming the file and what is wrong."""
    try:
        record = json.loads(data)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise _malformed(uri, f"not valid JSON ({exc})") from None
    if not isinstance(record, dict):
        raise _malformed(uri, f"a JSON {type(record).__name__}, not an object")
    for key, kind in _FIELDS.items():
        if not _is(record.get(key), kind):
            raise _malformed(uri, f"no {key!r} {kind.__name__}")
    if "ttl" in record and not (_is(record["ttl"], float) and record["ttl"] > 0):
        raise _malformed(uri, "its 'ttl' is not a positive number of seconds")
    return record


def _is(value: object, kind: type) -> bool:
    if isinstance(value, bool):  # JSON true is no pid or time
        return False
    if kind is float:  # NaN and Infinity parse as JSON numbers here, and compare false with every time
        return isinstance(value, int | float) and math.isfinite(value)
    return isinstance(value, kind)


def _malformed(uri: str, what: str) -> MalformedLeaseError:
    return MalformedLeaseError(
        f"lease {uri} is not a lease record: {what}; expected a JSON object with owner, host, pid, "
        f"renewed_at and ttl. Delete it once no run writes to that folder"
    )


def _owner_of(data: bytes, uri: str) -> str:
    """Who took the lease, for a message: the heartbeat thread must not die on a record it cannot read."""
    try:
        return parse_lease(data, uri)["owner"]
    except MalformedLeaseError:
        return f"an unreadable record in {uri}"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True
