"""Data where it lives: a dataset or annotations spec read in place, locally or on S3, never extracted.

A spec is one of:
- a folder or ``s3://`` prefix (images at ``<gesture>/<id>.jpg``, annotations at ``<gesture>.json``);
- a zip archive (``.../subsample.zip``, ``s3://bucket/data/subsample.zip``);
- a folder or prefix of per-gesture archives ``<gesture>.zip``, each holding ``<gesture>/<id>.jpg`` (HaGRID's
  distribution);
- fsspec's chained URL into an archive: ``zip://ann_subsample::s3://bucket/x.zip``.
An archive (or archive folder) whose files all sit under one top folder (``ann_subsample/``) is entered.

Resolving a spec gives a `Listing`: each file's name relative to the spec and a `FileRef`, whose `locator`
is what `Sample.image` holds and `read_bytes` reads: a plain path stays a plain path, an S3 object is its
``s3://`` URI, and an archive member is ``<archive path or URI>!/<member>``, so the last two parts of any
locator are still HaGRID's ``<gesture>/<id>.jpg``. Its `identity` (ETag and size of an object, CRC-32 and size
of a member) is what the crop cache keys it by, without reading a frame.

Per process, `activate` sets how S3 is reached (the config's ``storage`` section) and forgets what was listed
before: call it once at the start of anything that reads data (a prepare shard on a Dask worker included).
"""

from __future__ import annotations

import os
import re
import threading
from dataclasses import dataclass
from pathlib import Path

from handgesture.data.archives import (
    Member,
    ZipIndex,
    central_directory_file,
    extent,
    member_bytes,
    members_bytes,
)
from handgesture.data.locations import Locations, is_s3
from handgesture.errors import DataError
from handgesture.storage.base import S3Settings

MEMBER = "!/"  # between an archive and a member in a locator
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")


@dataclass(frozen=True)
class FileRef:
    locator: str
    identity: str | None = None  # None: a local file, keyed by its size as a plain folder's files are


Listing = dict[str, FileRef]  # name relative to the spec ("call/1a2b.jpg", "call.json") -> where it is


class _State:
    def __init__(self, s3: S3Settings | None = None):
        self.places = Locations(s3)
        self.indexes: dict[str, ZipIndex] = {}  # archive locator -> its checked central directory
        self.identities: dict[str, str] = {}  # S3 object URI -> "etag:...:size", from its listing
        self.lock = threading.Lock()


_state = _State()


def activate(settings=None, fresh: bool = True) -> None:
    """Read data in this process with these S3 settings (a `Config`, its `storage` section, or
    `S3Settings`; None: the default AWS chain) and with nothing listed yet, so a long-lived worker never
    reads through an archive index older than its task. ``fresh=False`` keeps what was listed when the
    settings are the same (a training step right after its prepare step)."""
    from handgesture.storage import s3_settings

    global _state
    if hasattr(settings, "storage"):
        settings = settings.storage
    if settings is not None and not isinstance(settings, S3Settings):
        settings = s3_settings(settings)
    if not fresh and _state.places.s3 == (settings or S3Settings()):
        return
    _state.places.close()
    _state = _State(settings)


def is_plain_folder(spec) -> bool:
    """A local folder read as before sources existed (its files by path, keyed by size): no URI, no chain,
    no archive, and not a folder of per-gesture archives."""
    text = str(spec)
    if _SCHEME.match(text) or "::" in text or text.lower().endswith(".zip"):
        return False
    return not (os.path.isdir(text) and _has_archives(text) and not _has_subfolders(text))


def check_spec(key: str, spec: str) -> None:
    """One DataError for a spec no source reads (`gs://`, an http URL, a chain through a cache)."""
    text = str(spec)
    if "::" in text:
        head, _, target = text.partition("::")
        if not head.lower().startswith("zip://") or "::" in target:
            raise DataError(
                f"{key}={_shown(text)}: only zip://<folder>::<archive> chains are read (nothing is cached or "
                "extracted locally)"
            )
        text = target
    scheme = _SCHEME.match(text)
    if scheme and "@" in text.split("/")[2]:
        raise DataError(
            f"{key}={_shown(text)}: credentials in a URI are never read (they come from storage.block or the "
            "environment)"
        )
    if scheme and scheme.group(1).lower() not in ("s3", "file"):
        raise DataError(
            f"{key}={_shown(text)}: a {scheme.group(1)}:// URI; expected a local path, file://, s3:// or a "
            "zip://<folder>::<archive> chain"
        )


def dataset_files(spec, gestures) -> Listing:
    """Every file of a dataset spec, by ``<gesture>/<file>`` (its one top folder entered)."""
    listing = _resolve(str(spec), set(gestures))
    return _entered(listing, lambda names: any(n.split("/", 1)[0] in gestures for n in names if "/" in n))


def annotation_files(spec, gestures) -> dict[str, FileRef]:
    """``<gesture>.json`` of each of ``gestures`` that the annotations spec holds."""
    listing = _entered(_resolve(str(spec), set()), lambda names: any(f"{g}.json" in names for g in gestures))
    return {g: listing[f"{g}.json"] for g in gestures if f"{g}.json" in listing}


def read_bytes(locator: str) -> bytes:
    """The bytes of a file, an S3 object or an archive member (checked against its CRC-32); from a read
    already in flight when a `prefetched` block expects it."""
    ahead = _prefetch.take(locator) if _prefetch is not None else None
    return ahead() if ahead is not None else _read_now(locator)


def _read_now(locator: str) -> bytes:
    archive, member = split_member(locator)
    if member is None:
        return _state.places.read_all(_local(locator))
    index = _index(archive)
    if member not in index.members:
        raise DataError(f"archive {_shown(archive)} has no member {member!r}")
    read = lambda start, n: _state.places.read_range(_local(archive), start, n)  # noqa: E731
    return member_bytes(read, index.members[member], _shown(archive))


def read_file(spec: str) -> bytes:
    """One file named by a spec: a path, an ``s3://`` object, or ``zip://<member>::<archive>``."""
    check_spec("file", spec)
    if spec.lower().startswith("zip://"):
        inner, _, target = spec[len("zip://") :].partition("::")
        names = _entered(_archive_listing(target), lambda n: inner in n)
        if inner not in names:
            raise DataError(f"archive {_shown(target)} has no member {inner!r}")
        return read_bytes(names[inner].locator)
    return read_bytes(_local(spec))


def identity(locator: str) -> str | int:
    """What the cache key holds for a file: a local file's size (as it always was; -1 when it is gone), an
    object's ETag and size, a member's CRC-32 and size; never its bytes."""
    archive, member = split_member(locator)
    if member is not None:
        found = _index(archive).members.get(member)
        return found.identity if found else -1
    if is_s3(locator):
        if locator not in _state.identities:
            stat = _state.places.object_stat(locator)
            _state.identities[locator] = f"etag:{stat[1]}:{stat[0]}" if stat else "-1"
        return _state.identities[locator]
    try:
        return os.stat(locator).st_size
    except OSError:
        return -1


def split_member(locator: str) -> tuple[str, str | None]:
    """(archive, member) of a member's locator; (locator, None) for a file or object."""
    archive, mark, member = locator.partition(MEMBER)
    if mark and (archive.lower().endswith(".zip") or _SCHEME.match(archive)):
        return archive, member
    return locator, None


def _resolve(spec: str, gestures: set[str]) -> Listing:
    if spec.lower().startswith("zip://"):
        inner, _, target = spec[len("zip://") :].partition("::")
        return _subtree(_archive_listing(target), inner.strip("/"), spec)
    if spec.lower().endswith(".zip"):
        return _archive_listing(spec)
    return _folder_listing(_local(spec), gestures)


def _subtree(listing: Listing, folder: str, spec: str) -> Listing:
    if not folder:
        return listing
    inside = {n[len(folder) + 1 :]: ref for n, ref in listing.items() if n.startswith(folder + "/")}
    if not inside:
        raise DataError(f"{_shown(spec)}: the archive has no folder {folder!r}")
    return inside


def _entered(listing: Listing, looks_right) -> Listing:
    """The listing, with a single top folder entered (repeatedly) while its root does not look right."""
    while listing and not looks_right(set(listing)):
        tops = {n.split("/", 1)[0] for n in listing}
        if len(tops) != 1 or not all("/" in n for n in listing):
            break
        top = tops.pop()
        listing = {n[len(top) + 1 :]: ref for n, ref in listing.items()}
    return listing


def _archive_listing(spec: str) -> Listing:
    archive = _local(spec)
    return {
        name: FileRef(f"{archive}{MEMBER}{name}", m.identity) for name, m in _index(archive).members.items()
    }


def _index(archive: str) -> ZipIndex:
    with _state.lock:
        found = _state.indexes.get(archive)
    if found is not None:
        return found
    size = _size(archive)
    with _directory_file(archive, size) as fh:
        index = ZipIndex.read(fh, _shown(archive))
    with _state.lock:
        _state.indexes[archive] = index
    return index


def _directory_file(archive: str, size: int):
    """What the central directory is parsed from: on S3, its two ranges read up front (each request costs
    more than its bytes); a local file as it is."""
    if is_s3(archive):
        return central_directory_file(lambda start, n: _state.places.read_range(archive, start, n), size)
    return open(archive, "rb")  # noqa: SIM115 - the caller closes it


def _size(url: str) -> int:
    if is_s3(url):
        stat = _state.places.object_stat(url)
        if stat is None:
            raise DataError(f"no such archive: {_shown(url)} (expected a zip object there)")
        return stat[0]
    if not os.path.isfile(url):
        raise DataError(f"no such archive: {url} (expected a zip file there)")
    return os.path.getsize(url)


def _folder_listing(root: str, gestures: set[str]) -> Listing:
    """A folder's or prefix's files; a ``<gesture>.zip`` in it is mounted as that gesture's folder."""
    if is_s3(root):
        objects = _state.places.objects(root)
        if not objects:
            raise DataError(f"no objects under {_shown(root)} (expected a prefix of files or archives)")
        files = {}
        for name, size, etag in objects:
            uri = f"{root.rstrip('/')}/{name}"
            _state.identities[uri] = f"etag:{etag}:{size}"
            files[name] = FileRef(uri, _state.identities[uri])
    else:
        if not os.path.isdir(root):
            raise DataError(f"folder {root} does not exist (expected a folder, an archive or an s3:// URI)")
        files = _local_files(root, gestures)
    for gesture in gestures:
        if f"{gesture}.zip" in files and not any(n.startswith(f"{gesture}/") for n in files):
            files.update(_mounted(files[f"{gesture}.zip"].locator, gesture))
    return files


def _mounted(archive: str, gesture: str) -> Listing:
    """A per-gesture archive's members as ``<gesture>/<file>``, whether it holds ``<gesture>/`` or not."""
    members = _archive_listing(archive)
    if all(n.startswith(f"{gesture}/") for n in members):
        return members
    return {f"{gesture}/{n}": ref for n, ref in members.items()}


def _local_files(root: str, gestures: set[str]) -> Listing:
    """The top level's files and each gesture folder's files, without walking anything else."""
    files = {e.name: FileRef(e.path) for e in os.scandir(root) if e.is_file(follow_symlinks=False)}
    for gesture in gestures:
        folder = os.path.join(root, gesture)
        if os.path.isdir(folder):
            inside = [e for e in os.scandir(folder) if e.is_file(follow_symlinks=False)]  # no link out
            files.update({f"{gesture}/{e.name}": FileRef(e.path) for e in inside})
    return files


def _has_archives(folder: str) -> bool:
    return any(e.name.lower().endswith(".zip") and e.is_file() for e in os.scandir(folder))


def _has_subfolders(folder: str) -> bool:
    return any(e.is_dir() for e in os.scandir(folder))


def _local(spec: str) -> str:
    """A spec's place: ``file://`` made a path, local paths absolute, S3 URIs as given."""
    if spec.lower().startswith("file://"):
        return spec[len("file://") :]
    return spec if is_s3(spec) else str(Path(spec).absolute())


def _shown(uri: str) -> str:
    """A URI as errors show it: any user:password@ part masked."""
    return re.sub(r"(://)[^/@]*@", r"\1***@", uri)


def is_plain_locator(locator: str) -> bool:
    """A local file's path: read as files always were (the fast path of a plain folder)."""
    return not _SCHEME.match(locator) and split_member(locator)[1] is None


def key_parts(annotation_files):
    """(name, what is keyed) of each annotation file, in name order: a local file's bytes, as always; a
    member's or object's identity, so a key never downloads what it can name. One file at a time: HaGRID
    v2's train files hold 1.2 GB together."""
    plain = [Path(f) for f in annotation_files if is_plain_locator(str(f))]
    located = sorted(str(f) for f in annotation_files if not is_plain_locator(str(f)))
    for path in sorted(plain):
        yield path.name, path.read_bytes()
    for f in located:
        yield Path(f).name, str(identity(f)).encode()


# Neighbouring members of an S3 archive are fetched by one ranged GET: a request costs botocore (and a
# server on the same cores, like moto) several ms of CPU, more than the bytes it carries. A gap up to
# MAX_GAP is read rather than split on; one read holds at most CHUNK_BYTES (a larger member is read alone),
# and another shared read starts only while those not yet handed out hold under twice that: memory stays
# bounded (3 x chunk at most), and the first read is not queued behind the server's work on the next seven.
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
    archive, name = split_member(locator)
    if name is None or not is_s3(archive):
        return None
    with _state.lock:
        index = _state.indexes.get(archive)
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
        return {run[0]: _read_now(run[0])}
    archive = split_member(run[0])[0]
    members = [_index(archive).members[split_member(loc)[1]] for loc in run]
    read = lambda start, n: _state.places.read_range(_local(archive), start, n)  # noqa: E731
    return dict(zip(run, members_bytes(read, members, _shown(archive)), strict=True))


def _outcome(found: bytes | Exception) -> bytes:
    if isinstance(found, Exception):
        raise found
    return found


def _run_bytes(run: list[str]) -> int:
    """What a shared read holds: the span of its members; 0 for a read of one (``depth`` bounds those)."""
    if len(run) == 1:
        return 0
    members = [_s3_member(locator)[1] for locator in run]
    return max(extent(m) for m in members) - members[0].offset


class _Prefetch:
    """Reads of the next few runs of members or objects, in flight while the current frame is decoded: on S3
    each is a round trip, and one process waiting for each in turn would spend its core waiting."""

    def __init__(self, locators, depth: int, chunk: int):
        from concurrent.futures import ThreadPoolExecutor

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


_prefetch: _Prefetch | None = None


class prefetched:  # noqa: N801 - used as a context manager, like open()
    """``with prefetched(locators):`` reads in the order given are served from at most ``depth`` reads ahead;
    neighbouring members of an S3 archive share a read of at most ``chunk`` bytes, and such reads not yet
    handed out hold under ``2 x chunk`` (plus a last one started). Anything else reads as usual. One
    reader thread at a time."""

    def __init__(self, locators, depth: int = 8, chunk: int = CHUNK_BYTES):
        self.locators, self.depth, self.chunk = list(locators), depth, chunk

    def __enter__(self):
        global _prefetch
        _prefetch = _Prefetch(self.locators, self.depth, self.chunk)
        return self

    def __exit__(self, *exc) -> None:
        global _prefetch
        done, _prefetch = _prefetch, None
        if done is not None:
            done.pool.shutdown(wait=True, cancel_futures=True)
