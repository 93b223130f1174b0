"""Specs and locators as strings: which specs a source reads, and what a locator names (a path, an ``s3://``
object, or ``<archive path or URI>!/<member>``). Nothing here opens or lists anything.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from handgesture.data.locations import is_s3
from handgesture.errors import DataError

MEMBER = "!/"  # between an archive and a member in a locator
SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")


@dataclass(frozen=True)
class FileRef:
    locator: str
    identity: str | None = None  # None: a local file, keyed by its size as a plain folder's files are


Listing = dict[str, FileRef]  # name relative to the spec ("call/1a2b.jpg", "call.json") -> where it is


def check_spec(key: str, spec: str) -> None:
    """One DataError for a spec no source reads (`gs://`, an http URL, a chain through a cache)."""
    text = str(spec)
    if "::" in text:
        head, _, target = text.partition("::")
        if not head.lower().startswith("zip://") or "::" in target:
            raise DataError(
                f"{key}={shown(text)}: only zip://<folder>::<archive> chains are read (nothing is cached or "
                "extracted locally)"
            )
        text = target
    scheme = SCHEME.match(text)
    if scheme and "@" in text.split("/")[2]:
        raise DataError(
            f"{key}={shown(text)}: credentials in a URI are never read (they come from storage.block or the "
            "environment)"
        )
    if scheme and scheme.group(1).lower() not in ("s3", "file"):
        raise DataError(
            f"{key}={shown(text)}: a {scheme.group(1)}:// URI; expected a local path, file://, s3:// or a "
            "zip://<folder>::<archive> chain"
        )


def split_member(locator: str) -> tuple[str, str | None]:
    """(archive, member) of a member's locator; (locator, None) for a file or object."""
    archive, mark, member = locator.partition(MEMBER)
    if mark and (archive.lower().endswith(".zip") or SCHEME.match(archive)):
        return archive, member
    return locator, None


def is_plain_locator(locator: str) -> bool:
    """A local file's path: read as files always were (the fast path of a plain folder)."""
    return not SCHEME.match(locator) and split_member(locator)[1] is None


def place(spec: str) -> str:
    """A spec's place: ``file://`` made a path, local paths absolute, S3 URIs as given."""
    if spec.lower().startswith("file://"):
        return spec[len("file://") :]
    return spec if is_s3(spec) else str(Path(spec).absolute())


def shown(uri: str) -> str:
    """A URI as errors show it: any user:password@ part masked."""
    return re.sub(r"(://)[^/@]*@", r"\1***@", uri)
