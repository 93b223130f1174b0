"""A locator's bytes in this process: how S3 is reached (set by `activate`), and what was read on the way,
kept until the next `activate`: each archive's checked central directory, each listed object's identity.
"""

from __future__ import annotations

import os
import threading

from handgesture.data.archives import TAIL_BYTES, ReadRange, ZipIndex, central_directory_file, member_bytes
from handgesture.data.locations import Locations, is_s3
from handgesture.data.locators import place, shown, split_member
from handgesture.errors import DataError, ObjectNotFoundError
from handgesture.storage.base import S3Settings


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


def read_now(locator: str) -> bytes:
    """The bytes of a file, an S3 object or an archive member (checked against its CRC-32), read now."""
    archive, member = split_member(locator)
    if member is None:
        return _state.places.read_all(place(locator))
    index = archive_index(archive)
    if member not in index.members:
        raise DataError(f"archive {shown(archive)} has no member {member!r}")
    return member_bytes(range_reader(archive), index.members[member], shown(archive))


def range_reader(archive: str) -> ReadRange:
    """Ranged reads of an archive: a local file's ``pread``, an S3 ranged GET."""
    return lambda start, n: _state.places.read_range(place(archive), start, n)


def archive_index(archive: str) -> ZipIndex:
    """An archive's checked central directory, read on first use."""
    found = indexed(archive)
    if found is not None:
        return found
    with _directory_file(archive) as fh:
        index = ZipIndex.read(fh, shown(archive))
    with _state.lock:
        _state.indexes[archive] = index
    return index


def indexed(archive: str) -> ZipIndex | None:
    """An archive's central directory if it was read already; None (never a read) if not."""
    with _state.lock:
        return _state.indexes.get(archive)


def _directory_file(archive: str):
    """What the central directory is parsed from: on S3, the archive's last bytes (its size from the same
    answer) and, when the directory starts before them, one more range: each request costs more than its
    bytes. A local file as it is."""
    if is_s3(archive):
        try:
            tail, size = _state.places.read_tail(archive, TAIL_BYTES)
        except ObjectNotFoundError:
            raise DataError(f"no such archive: {shown(archive)} (expected a zip object there)") from None
        return central_directory_file(range_reader(archive), size, tail)
    if not os.path.isfile(archive):
        raise DataError(f"no such archive: {archive} (expected a zip file there)")
    return open(archive, "rb")  # noqa: SIM115 - the caller closes it


def listed_objects(root: str) -> dict[str, tuple[str, str]]:
    """Each object under an ``s3://`` prefix, by name relative to it: (its URI, its identity), which is
    kept for `identity` (a listing already says what a cache key holds)."""
    found = {}
    for name, size, etag in _state.places.objects(root):
        uri = f"{root.rstrip('/')}/{name}"
        _state.identities[uri] = f"etag:{etag}:{size}"
        found[name] = (uri, _state.identities[uri])
    return found


def identity(locator: str) -> str | int:
    """What the cache key holds for a file: a local file's size (as it always was; -1 when it is gone), an
    object's ETag and size, a member's CRC-32 and size; never its bytes."""
    archive, member = split_member(locator)
    if member is not None:
        found = archive_index(archive).members.get(member)
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
