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

Below this module: `locators` (spec and locator strings), `reading` (this process's S3 settings, archive
indexes and identities; one read), `prefetch` (reads ahead, shared on S3).
"""

from __future__ import annotations

import os
from pathlib import Path

from handgesture.data import prefetch, reading
from handgesture.data.locations import is_s3
from handgesture.data.locators import (
    MEMBER,
    SCHEME,
    FileRef,
    Listing,
    check_spec,
    is_plain_locator,
    place,
    shown,
    split_member,
)
from handgesture.data.prefetch import prefetched
from handgesture.data.reading import activate, identity
from handgesture.errors import DataError

__all__ = [
    "MEMBER",
    "FileRef",
    "Listing",
    "activate",
    "annotation_files",
    "check_spec",
    "dataset_files",
    "identity",
    "is_plain_folder",
    "is_plain_locator",
    "key_parts",
    "prefetched",
    "read_bytes",
    "read_file",
    "split_member",
]


def is_plain_folder(spec) -> bool:
    """A local folder read as before sources existed (its files by path, keyed by size): no URI, no chain,
    no archive, and not a folder of per-gesture archives."""
    text = str(spec)
    if SCHEME.match(text) or "::" in text or text.lower().endswith(".zip"):
        return False
    return not (os.path.isdir(text) and _has_archives(text) and not _has_subfolders(text))


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
    ahead = prefetch.take(locator)
    return ahead() if ahead is not None else reading.read_now(locator)


def read_file(spec: str) -> bytes:
    """One file named by a spec: a path, an ``s3://`` object, or ``zip://<member>::<archive>``."""
    check_spec("file", spec)
    if spec.lower().startswith("zip://"):
        inner, _, target = spec[len("zip://") :].partition("::")
        names = _entered(_archive_listing(target), lambda n: inner in n)
        if inner not in names:
            raise DataError(f"archive {shown(target)} has no member {inner!r}")
        return read_bytes(names[inner].locator)
    return read_bytes(place(spec))


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


def _resolve(spec: str, gestures: set[str]) -> Listing:
    if spec.lower().startswith("zip://"):
        inner, _, target = spec[len("zip://") :].partition("::")
        return _subtree(_archive_listing(target), inner.strip("/"), spec)
    if spec.lower().endswith(".zip"):
        return _archive_listing(spec)
    return _folder_listing(place(spec), gestures)


def _subtree(listing: Listing, folder: str, spec: str) -> Listing:
    if not folder:
        return listing
    inside = {n[len(folder) + 1 :]: ref for n, ref in listing.items() if n.startswith(folder + "/")}
    if not inside:
        raise DataError(f"{shown(spec)}: the archive has no folder {folder!r}")
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
    archive = place(spec)
    members = reading.archive_index(archive).members
    return {name: FileRef(f"{archive}{MEMBER}{name}", m.identity) for name, m in members.items()}


def _folder_listing(root: str, gestures: set[str]) -> Listing:
    """A folder's or prefix's files; a ``<gesture>.zip`` in it is mounted as that gesture's folder."""
    if is_s3(root):
        objects = reading.listed_objects(root)
        if not objects:
            raise DataError(f"no objects under {shown(root)} (expected a prefix of files or archives)")
        files = {name: FileRef(uri, found) for name, (uri, found) in objects.items()}
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
