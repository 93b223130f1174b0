"""Reads ahead of a reader that knows its order (prepare decoding frame after frame): ``with
prefetched(locators):`` keeps the next few reads in flight, and neighbouring members of an S3 archive share
one ranged GET. `sources.read_bytes` takes a read from here when one expects its locator.

A request costs botocore (and a server on the same cores, like moto) several ms of CPU, more than the bytes
it carries. A gap up to MAX_GAP is read rather than split on; one read holds at most CHUNK_BYTES (a larger
member is read alone), and another shared read starts only while those not yet handed out hold under twice
that: memory stays bounded (3 x chunk at most), and the first read is not queued behind the server's work on
the next seven.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from handgesture.data import reading
from handgesture.data.archives import Member, extent, members_bytes
from handgesture.data.locations import is_s3
from handgesture.data.locators import is_plain_locator, shown, split_member

MAX_GAP = 64 * 2**10
CHUNK_BYTES = 8 * 2**20


def planned_reads(locators, chunk: int = CHUNK_BYTES) -> list[list[str]]:
    """The locators that are not local files, each once and in order, in runs that one read serves."""
    runs: list[list[str]] = []
    last = None  # (archive, run start, previous member's offset, run end) of the run being grown
    for locator in dict.fromkeys(locators):
        if is_plain_locator(locator):
            continue
        place = _s3_member(locator)
        limit = chunk if len(runs) > 1 else chunk // 8  # a small first read: the decoder starts sooner
        if place is not None and _joins(last, *place, limit):
            runs[-1].append(locator)
            last = (last[0], last[1], place[1].offset, max(last[3], extent(place[1])))
            continue
        runs.append([locator])
        last = (place[0], place[1].offset, place[1].offset, extent(place[1])) if place else None
    return runs


def _s3_member(locator: str) -> tuple[str, Member] | None:
    """(archive, member) of a member of an S3 archive already indexed; None for anything read alone (a
    local archive's ``pread`` costs no request; an unknown member's error comes from its own read)."""
    found = _member(locator)
    return found if found is not None and is_s3(found[0]) else None


def _member(locator: str) -> tuple[str, Member] | None:
    """(archive, member) of a member of an archive already indexed, local or on S3; None otherwise."""
    archive, name = split_member(locator)
    index = reading.indexed(archive) if name is not None else None
    found = index.members.get(name) if index else None
    return (archive, found) if found else None


def _joins(last, archive: str, member: Member, chunk: int) -> bool:
    """Whether ``member`` extends the run ``last`` within one read: the same archive, further on (offsets
    ascend within a read), close after it, and the read still under ``chunk`` bytes."""
    if last is None or last[0] != archive or member.offset <= last[2]:
        return False
    return member.offset <= last[3] + MAX_GAP and extent(member) - last[1] <= chunk


def _read_run(run: list[str]) -> dict[str, bytes | Exception]:
    """Each locator's bytes, or the ArchiveError its own read would raise (one corrupt member spoils only
    its entry); any other failure (the request itself) fails the whole run, each locator raising it."""
    if len(run) == 1:
        return {run[0]: reading.read_now(run[0])}
    archive = split_member(run[0])[0]
    members = [reading.archive_index(archive).members[split_member(loc)[1]] for loc in run]
    found = members_bytes(reading.range_reader(archive), members, shown(archive))
    return dict(zip(run, found, strict=True))


def _outcome(found: bytes | Exception) -> bytes:
    if isinstance(found, Exception):
        raise found
    return found


def _run_bytes(run: list[str]) -> int:
    """What a read holds until it is handed out: the span of its members when the index knows them (a
    large annotation file read alone counts too); 0 for a file or object (``depth`` bounds those)."""
    members = [_member(locator) for locator in run]
    if None in members:
        return 0
    return max(extent(m) for _, m in members) - members[0][1].offset


class _Prefetch:
    """Reads of the next few runs of members or objects, in flight while the current frame is decoded: on S3
    each is a round trip, and one process waiting for each in turn would spend its core waiting."""

    def __init__(self, locators, depth: int, chunk: int):
        self.pool, self.depth = ThreadPoolExecutor(depth, thread_name_prefix="prefetch"), depth
        self.ahead = 2 * chunk
        self.upcoming = iter(planned_reads(locators, chunk))
        self.pending: dict = {}  # locator -> the read of its run
        self.untaken: dict = {}  # a read in flight -> [its locators not taken yet, the bytes it holds]
        self.fill()

    def fill(self) -> None:
        while len(self.untaken) < self.depth and self.held() < self.ahead:
            run = next(self.upcoming, None)
            if run is None:
                return
            read = self.pool.submit(_read_run, run)
            self.untaken[read] = [len(run), _run_bytes(run)]
            self.pending.update(dict.fromkeys(run, read))

    def held(self) -> int:
        return sum(size for _, size in self.untaken.values())

    def take(self, locator: str):
        """A callable giving ``locator``'s bytes (or raising its error); None when no read expects it."""
        read = self.pending.pop(locator, None)
        if read is None:
            return None
        self.untaken[read][0] -= 1
        if not self.untaken[read][0]:  # every member of the run handed out: its room goes to the next run
            del self.untaken[read]
        self.fill()
        return lambda: _outcome(read.result().pop(locator))  # popped: a taken frame is not held twice


_active: _Prefetch | None = None


def take(locator: str):
    """The read in flight for ``locator`` in the current `prefetched` block (a callable giving its bytes or
    raising its error); None outside a block or when the block does not expect it."""
    return _active.take(locator) if _active is not None else None


class prefetched:  # noqa: N801 - used as a context manager, like open()
    """``with prefetched(locators):`` reads in the order given are served from at most ``depth`` reads ahead;
    neighbouring members of an S3 archive share a read of at most ``chunk`` bytes, and such reads not yet
    handed out hold under ``2 x chunk`` (plus a last one started; members read alone count too). Anything
    else reads as usual. One reader thread at a time."""

    def __init__(self, locators, depth: int = 8, chunk: int = CHUNK_BYTES):
        self.locators, self.depth, self.chunk = list(locators), depth, chunk

    def __enter__(self):
        global _active
        self.outer, self.reads = _active, _Prefetch(self.locators, self.depth, self.chunk)
        _active = self.reads
        return self

    def __exit__(self, *exc) -> None:
        global _active
        _active = self.outer  # a block inside another hands the reads back to it
        self.reads.pool.shutdown(wait=True, cancel_futures=True)
