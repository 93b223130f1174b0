"""A run folder has one owner: a second writer fails at once, a dead owner's lease is taken over, and what a
stopped writer left behind (spooled uploads, temp files, half-deleted checkpoints) is finished or removed.
Every test holds for a local folder and for S3 (moto_server)."""

import errno
import json
import socket
import subprocess
import threading

import pytest
import torch

from handgesture.checkpoints.lease import (
    LEASE,
    MAX_TTL,
    LeaseLostError,
    MalformedLeaseError,
    RunFolderBusyError,
    RunLease,
)
from handgesture.checkpoints.run_folder import MANIFEST, RunFolder
from handgesture.checkpoints.uploader import BackgroundUploader
from handgesture.errors import InputError, StorageError
from tests.unit.checkpoints.test_run_folder import fake_checkpoint


@pytest.fixture(autouse=True)
def heartbeats_stop_with_the_test(monkeypatch):
    """Every lease a test takes stops its heartbeat at the test's end: a heartbeat left running would renew
    into a folder pytest has already removed (an unhandled exception in its thread)."""
    leases = []
    original = RunLease.__init__

    def recorded(self, *args, **kwargs):
        original(self, *args, **kwargs)
        leases.append(self)

    monkeypatch.setattr(RunLease, "__init__", recorded)
    yield
    for lease in leases:
        lease._stop.set()


def test_a_second_writer_fails_at_once_naming_the_folder_and_the_owner(store):
    first = RunLease(store, "flow-run-aaa")
    first.acquire()
    with pytest.raises(RunFolderBusyError) as info:
        RunLease(store, "flow-run-bbb").acquire()
    assert store.root in str(info.value) and "flow-run-aaa" in str(info.value)
    first.release()
    assert store.read_versioned(LEASE) is None  # given back
    RunLease(store, "flow-run-bbb").acquire()


def test_a_stale_lease_and_ones_own_are_taken_over(store):
    now = [1000.0]
    RunLease(store, "lost-machine", ttl=60, clock=lambda: now[0]).acquire()  # never renewed again
    now[0] += 61
    taker = RunLease(store, "new-owner", ttl=60, clock=lambda: now[0])
    taker.acquire()
    assert json.loads(store.read_versioned(LEASE)[0])["owner"] == "new-owner"
    again = RunLease(store, "new-owner", ttl=60, clock=lambda: now[0])  # a retry of the same flow run
    again.acquire()
    taker.renew()  # the first holder of that name now sees it is not its lease any more
    with pytest.raises(LeaseLostError, match="taken over by new-owner"):
        taker.check()


def _held_elsewhere(store, renewed_at: float, ttl) -> None:
    """A lease of a live process on another host (so only its times can tell whether it is stale)."""
    record = {"owner": "flow-run-elsewhere", "host": "elsewhere", "pid": 1, "renewed_at": renewed_at}
    record["ttl"] = ttl
    assert store.create_exclusive(json.dumps(record).encode(), LEASE)


def _owner(store) -> str:
    return json.loads(store.read_versioned(LEASE)[0])["owner"]


def test_staleness_is_judged_by_the_ttl_the_holder_recorded_not_the_takers(store):
    now = [1000.0]
    _held_elsewhere(store, renewed_at=now[0], ttl=600)
    now[0] += 61  # stale by the taker's 60 s, live by the holder's 600 s
    with pytest.raises(RunFolderBusyError, match="flow-run-elsewhere"):
        RunLease(store, "flow-run-taker", ttl=60, clock=lambda: now[0]).acquire()
    now[0] += 540  # 601 s: stale by the holder's own ttl
    RunLease(store, "flow-run-taker", ttl=60, clock=lambda: now[0]).acquire()
    assert _owner(store) == "flow-run-taker"


@pytest.mark.parametrize(
    "content", [b"", b"\x00garbage{", b"[]", b"{}", b'{"owner": "x", "host": "h", "pid": 1}', b"null"]
)
def test_a_malformed_lease_is_one_input_error_naming_the_file(store, content):
    assert store.create_exclusive(content, LEASE)
    with pytest.raises(MalformedLeaseError) as info:
        RunLease(store, "flow-run-taker").acquire()
    message = str(info.value)
    assert isinstance(info.value, InputError)  # so tasks never retry it and the commands exit 2
    assert store.uri(LEASE) in message and "\n" not in message
    assert store.read_versioned(LEASE)[0] == content  # left for someone to look at


@pytest.mark.parametrize(
    ("field", "value"),
    [("renewed_at", "NaN"), ("renewed_at", "Infinity"), ("ttl", "Infinity"), ("pid", "true")],
)
def test_a_lease_with_a_time_that_never_expires_is_malformed(store, field, value):
    record = {"owner": "o", "host": "elsewhere", "pid": 1, "renewed_at": 1000.0, "ttl": 60}
    text = json.dumps({**record, field: "@"}).replace('"@"', value)  # json.loads accepts NaN and Infinity
    assert store.create_exclusive(text.encode(), LEASE)
    with pytest.raises(MalformedLeaseError, match=field):
        RunLease(store, "flow-run-taker", clock=lambda: 1000.0).acquire()


def test_a_renewal_in_the_near_future_counts_as_now(store):
    now = [1000.0]
    _held_elsewhere(store, renewed_at=now[0] + 30, ttl=60)  # the other host's clock runs 30 s ahead
    with pytest.raises(RunFolderBusyError, match=r"renewed 0 s ago"):
        RunLease(store, "flow-run-taker", ttl=60, clock=lambda: now[0]).acquire()
    now[0] += 30 + 61
    RunLease(store, "flow-run-taker", ttl=60, clock=lambda: now[0]).acquire()
    assert _owner(store) == "flow-run-taker"


def test_a_renewal_far_in_the_future_does_not_block_the_folder_for_ever(store):
    now = 1000.0
    _held_elsewhere(store, renewed_at=now + 10 * 365 * 86400, ttl=60)  # a broken clock, or a forged record
    RunLease(store, "flow-run-taker", ttl=60, clock=lambda: now).acquire()
    assert _owner(store) == "flow-run-taker"


def test_a_huge_ttl_is_clamped(store):
    now = [1000.0]
    _held_elsewhere(store, renewed_at=now[0], ttl=1e12)
    now[0] += MAX_TTL - 1
    with pytest.raises(RunFolderBusyError):
        RunLease(store, "flow-run-taker", ttl=60, clock=lambda: now[0]).acquire()
    now[0] += 2
    RunLease(store, "flow-run-taker", ttl=60, clock=lambda: now[0]).acquire()
    assert _owner(store) == "flow-run-taker"


def test_a_holder_whose_lease_was_replaced_by_garbage_loses_it_and_says_so(store):
    holder = RunLease(store, "flow-run-holder")
    holder.acquire()
    holder._stop.set()  # no heartbeat in the background: this test renews by hand
    assert store.replace_if(b"garbage", LEASE, store.read_versioned(LEASE)[1])
    holder.renew()
    with pytest.raises(LeaseLostError, match="unreadable record"):
        holder.check()
    holder.release()


def test_a_lease_of_a_process_on_this_host_that_is_gone_is_taken_over_at_once(store):
    dead = subprocess.Popen(["true"])
    dead.wait()
    record = {
        "owner": "process-dead",
        "host": socket.gethostname(),
        "pid": dead.pid,
        "renewed_at": 9e12,
        "ttl": 60,
    }
    store.create_exclusive(json.dumps(record).encode(), LEASE)  # renewed "in the future": only the pid tells
    RunLease(store, "process-next").acquire()
    assert json.loads(store.read_versioned(LEASE)[0])["owner"] == "process-next"


def test_a_writer_whose_lease_was_taken_stops_before_its_next_commit(store):
    folder = RunFolder(store, owner="flow-run-first").open_for_writing()
    folder.commit(fake_checkpoint(1, 0.5), is_best=True)
    _, version = store.read_versioned(LEASE)
    stolen = {"owner": "flow-run-other", "host": "elsewhere", "pid": 1, "renewed_at": 9e12, "ttl": 60}
    assert store.replace_if(json.dumps(stolen).encode(), LEASE, version)
    folder.lease.renew()  # what the heartbeat does every ttl / 4
    with pytest.raises(LeaseLostError):
        folder.commit(fake_checkpoint(2, 0.6), is_best=True)
    folder.close(timeout=60)
    assert (
        json.loads(store.read_versioned(LEASE)[0])["owner"] == "flow-run-other"
    )  # not released by the loser


def test_opening_a_folder_finishes_what_a_killed_writer_left(store, tmp_path):
    folder = RunFolder(store, owner="first", spool_dir=tmp_path / "spool").open_for_writing()
    folder.commit(fake_checkpoint(1, 0.5), is_best=True)
    folder.close(timeout=60)
    store.put_bytes(b"torn", "checkpoints/e0009-s00000099.pth")  # written; its manifest never was (kill -9)
    if store.local_path(MANIFEST) is not None:
        (tmp_path / "runs" / "checkpoints" / ".e0002.pth.abc.partial").write_bytes(b"half")
    else:  # a remote folder: a committed checkpoint that only reached the local spool
        spooled = _spool(tmp_path / "spool", store, fake_checkpoint(12, 0.9))
    reopened = RunFolder(store, owner="second", spool_dir=tmp_path / "spool").open_for_writing()
    keys = store.list()
    assert "checkpoints/e0009-s00000099.pth" not in keys  # no manifest entry names it: never committed
    assert not [k for k in keys if k.endswith(".partial")]
    if store.local_path(MANIFEST) is None:
        assert spooled in keys and "best_model.pth" in keys and list((tmp_path / "spool").iterdir()) == []
        assert [e["key"] for e in reopened.manifest["checkpoints"]][-1] == spooled
    reopened.close(timeout=60)


def _spool(spool_dir, store, checkpoint) -> str:
    """Commit through an uploader that never uploads: what the spool holds after a kill -9."""
    from handgesture.checkpoints import format as ckpt_format

    blocked = threading.Event()
    uploader = BackgroundUploader(store, spool_dir)
    uploader._run = lambda job: blocked.wait()  # the upload never happens
    key = "checkpoints/e0001-s00000012.pth"
    uploader.put_bytes(ckpt_format.to_bytes(checkpoint), [key, "best_model.pth"])
    manifest = json.loads(store.get_bytes(MANIFEST))
    manifest["checkpoints"].append({"key": key, "uri": store.uri(key), "epoch": 1, "metrics": {}})
    uploader.put_bytes(json.dumps(manifest).encode(), [MANIFEST])
    uploader._spooler.shutdown(wait=True)  # both copies are in the spool, in commit order
    return key


def test_a_full_spool_disk_names_only_copies_that_exist(tmp_path, monkeypatch):
    from handgesture.storage import open_store

    uploader = BackgroundUploader(open_store(str(tmp_path / "remote")), tmp_path / "spool")

    def full(self, data):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(type(tmp_path), "write_bytes", full)
    uploader.put_bytes(torch.zeros(1).numpy().tobytes(), ["checkpoints/x.pth"])
    uploader._spooler.shutdown(wait=True)
    with pytest.raises(StorageError) as info:
        uploader.check()
    assert "local copies kept until uploaded: none" in str(info.value)


def test_constructing_a_run_folder_leaves_a_dead_writers_folder_as_it_was(store, tmp_path):
    """Only `open_for_writing()` takes the lease and cleans up: constructing touches and starts nothing."""
    store.put_bytes(b"torn", "checkpoints/e0009-s00000099.pth")  # what a killed writer left
    before = {key: store.get_bytes(key) for key in store.list()}
    threads = set(threading.enumerate())
    folder = RunFolder(store, owner="second", spool_dir=tmp_path / "spool")
    assert {key: store.get_bytes(key) for key in store.list()} == before  # no lease.json, no clean-up
    assert set(threading.enumerate()) == threads  # no heartbeat, no uploader
    assert folder.lease is None and folder.uploader is None and not (tmp_path / "spool").exists()
    folder.open_for_writing()
    assert LEASE in store.list() and "checkpoints/e0009-s00000099.pth" not in store.list()
    folder.close(timeout=60)
    assert store.list() == []
