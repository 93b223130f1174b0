"""Zip archives read in place: the central directory once, then each member by one ranged read.

Nothing is extracted. `ZipIndex.read` parses only the central directory (kilobytes per thousand members),
and checks every member there, before any run starts, so a bad archive is one error naming it and the
member: a path that escapes the archive (``../``, absolute), an encrypted member, a member larger than
`MAX_MEMBER_BYTES` once decompressed (a zip bomb), a compression we do not read. `member_bytes` then reads a
member's local header and data in one range (the caller's `read_range`: a file's ``pread``, an S3 ranged GET)
and checks its CRC-32, so bytes that changed under an index, or a lying header, never pass as a frame.
`members_bytes` reads a run of neighbouring members in one range instead (on S3 a request costs more CPU
than the bytes it carries) and checks each member exactly as `member_bytes` does.

A member's identity (CRC-32 and size, from the central directory) is what the crop cache keys an
archive-backed dataset by: whether a 1.5 TB dataset changed is a question kilobytes answer.
"""

from __future__ import annotations

import io
import struct
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass

from handgesture.errors import DataError

# The largest member we decompress: HaGRID's frames are about 1.3 MB and its largest annotation file tens of
# MB; a member that claims more is refused when the archive is opened (a zip bomb, or not a dataset).
MAX_MEMBER_BYTES = 256 * 2**20
STORED, DEFLATED = zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED
_LOCAL_HEADER = struct.Struct("<4sHHHHHIIIHH")  # signature ... name length, extra length: 30 bytes
_LOCAL_SIGNATURE = b"PK\x03\x04"
# A local header's extra field may differ from the central one; one range with this slack usually covers it.
_HEADER_SLACK = 1024
# An archive's end record (22 bytes, more with a comment or zip64 records) lies in its last bytes; read with
# them, and the central directory it points to with one more read, a remote archive costs two requests at
# most instead of one per seek `zipfile` makes (five or so), and never a frame's bytes. TAIL_BYTES is what
# `zipfile` searches for an end record behind a comment (64 KiB + 22): with it, any comment, and the whole
# directory of an archive of up to about 700 members, come in one request.
_END_SIGNATURE = b"PK\x05\x06"
TAIL_BYTES = 2**16 + 22

ReadRange = Callable[[int, int], bytes]  # (start, length) -> bytes


class ArchiveError(DataError):
    """An archive, or one of its members, that cannot be read as it is: the message names both."""


@dataclass(frozen=True)
class Member:
    name: str
    offset: int  # of its local header
    compressed: int
    size: int
    crc: int
    method: int

    @property
    def identity(self) -> str:
        """What the cache key holds for it: its CRC-32 and size, as the central directory records them."""
        return f"crc32:{self.crc:08x}:{self.size}"


@dataclass
class ZipIndex:
    uri: str  # what errors name: the archive's path or URI
    members: dict[str, Member]  # by name, directories left out

    @classmethod
    def read(cls, fileobj, uri: str) -> ZipIndex:
        """The archive's checked central directory; `fileobj` is seekable (a file, or ranged reads)."""
        try:
            infos = zipfile.ZipFile(fileobj).infolist()  # reads the end records and the central directory
        except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, ValueError, struct.error) as exc:
            raise ArchiveError(
                f"archive {uri} could not be read: its central directory is missing or corrupt ({exc}); "
                "expected a zip archive"
            ) from None
        members = {}
        for info in infos:
            if info.is_dir():
                continue
            check_member(info, uri)
            members[info.filename] = Member(
                info.filename, info.header_offset, info.compress_size, info.file_size, info.CRC,
                info.compress_type,
            )  # fmt: skip
        return cls(uri, members)


def central_directory_file(read_range: ReadRange, size: int, tail: bytes) -> io.BufferedReader:
    """A seekable file over an archive of ``size`` bytes whose last bytes, ``tail`` (`TAIL_BYTES` of them,
    read by the caller), hold its end record, and whose central directory is read up front when it starts
    before them: what `ZipIndex.read` parses from a remote archive. Anything else (an end record behind a
    longer comment, zip64 records) is read as asked, range by range."""
    start = size - len(tail)
    end = tail.rfind(_END_SIGNATURE)
    if 0 <= end <= len(tail) - 22:
        cd_size, cd_offset = struct.unpack_from("<II", tail, end + 12)
        if cd_offset < start and start - cd_offset <= cd_size:  # never more than zipfile itself would read
            tail, start = read_range(cd_offset, start - cd_offset) + tail, cd_offset
    return io.BufferedReader(_ReadAhead(read_range, size, start, tail))


class _ReadAhead(io.RawIOBase):
    """A seekable file over ranged reads whose bytes from ``start`` on are already in ``tail``."""

    def __init__(self, read_range: ReadRange, size: int, start: int, tail: bytes):
        self._read_range, self._size, self._pos = read_range, size, 0
        self._start, self._tail = start, tail

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._size}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def readinto(self, buffer) -> int:
        length = min(len(buffer), self._size - self._pos)
        if length <= 0:
            return 0
        at = self._pos - self._start
        data = self._tail[at : at + length] if at >= 0 else self._read_range(self._pos, length)
        buffer[: len(data)] = data
        self._pos += len(data)
        return len(data)


def check_member(info: zipfile.ZipInfo, uri: str) -> None:
    """Refuse, before anything is read, a member that no dataset should hold."""
    where = f"archive {uri}, member {info.filename!r}"
    if escapes(info.filename):
        raise ArchiveError(f"{where}: its path escapes the archive (expected a relative path without '..')")
    if info.flag_bits & 0x1:
        raise ArchiveError(f"{where}: it is encrypted (expected an unencrypted archive)")
    if info.file_size > MAX_MEMBER_BYTES:
        raise ArchiveError(
            f"{where}: {info.file_size} bytes once decompressed, over the limit of {MAX_MEMBER_BYTES} "
            "(a zip bomb?)"
        )
    if info.compress_type not in (STORED, DEFLATED):
        raise ArchiveError(
            f"{where}: compression method {info.compress_type} (expected stored or deflated members)"
        )


def escapes(name: str) -> bool:
    """Whether a member's path would leave the folder it is read into."""
    parts = name.replace("\\", "/").split("/")
    return name.startswith(("/", "\\")) or ":" in parts[0] or "\0" in name or ".." in parts


def member_bytes(read_range: ReadRange, member: Member, uri: str) -> bytes:
    """The member's bytes, decompressed and CRC-checked; ArchiveError when they are not what the central
    directory says (a corrupt or changed archive)."""
    return _checked(read_range(member.offset, _span(member)), read_range, member, uri)


def members_bytes(read_range: ReadRange, members: list[Member], uri: str) -> list[bytes | ArchiveError]:
    """Each member's bytes, or the ArchiveError `member_bytes` would raise for it, from one ranged read of
    the span they lie in (members in ascending offset order, as `extent` plans them): one corrupt member
    spoils only its own entry."""
    first = members[0].offset
    chunk = memoryview(read_range(first, max(extent(m) for m in members) - first))
    found: list[bytes | ArchiveError] = []
    for member in members:
        try:
            found.append(_checked(chunk[member.offset - first :], read_range, member, uri))
        except ArchiveError as exc:
            found.append(exc)
    return found


def extent(member: Member) -> int:
    """Where a read of the member ends (its local header, name, extra-field slack and data): what a read
    covering several members must reach."""
    return member.offset + _span(member)


def _span(member: Member) -> int:
    return _LOCAL_HEADER.size + len(member.name.encode()) + _HEADER_SLACK + member.compressed


def _checked(chunk, read_range: ReadRange, member: Member, uri: str) -> bytes:
    """The member's bytes from ``chunk`` (bytes from its local header on); read again on its own when its
    local extra field runs past the chunk."""
    where = f"archive {uri}, member {member.name!r}"
    if len(chunk) < _LOCAL_HEADER.size or chunk[:4] != _LOCAL_SIGNATURE:
        raise ArchiveError(f"{where}: no local header at offset {member.offset} (a corrupt archive)")
    fields = _LOCAL_HEADER.unpack_from(chunk)
    start = _LOCAL_HEADER.size + fields[-2] + fields[-1]  # after the name and the extra field
    if start + member.compressed > len(chunk):  # an unusually long local extra field
        chunk = read_range(member.offset, start + member.compressed)
    data = _decompress(chunk[start : start + member.compressed], member, where)
    if len(data) != member.size or zlib.crc32(data) != member.crc:
        raise ArchiveError(f"{where}: its bytes do not match the central directory's size and CRC-32")
    return data


def _decompress(raw: bytes, member: Member, where: str) -> bytes:
    if member.method == STORED:
        return bytes(raw)  # a copy: a slice of a shared read must not keep the whole read alive
    try:  # at most one byte past the stated size: a member that inflates further is refused, not expanded
        return zlib.decompressobj(-15).decompress(raw, member.size + 1)
    except zlib.error as exc:
        raise ArchiveError(f"{where}: corrupt compressed data ({exc})") from None
