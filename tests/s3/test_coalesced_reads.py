"""Neighbouring members of a zip on S3 (a real moto server) read by one ranged GET in a `prefetched` block:
the same bytes as one GET per member, in fewer GETs (counted on the client's own requests), each GET at
most the chunk size, and a corrupt member among them still its own one error, its neighbours unharmed."""

import random
import zipfile

import pytest

from handgesture.data import prefetch, reading, sources
from handgesture.data.archives import ArchiveError
from handgesture.storage import S3Settings
from tests.archive_data import upload

SIZES = [90_000, 120_000, 60_000, 500_000, 80_000, 100_000, 70_000, 110_000]  # one over the small chunk


def _zip(path, flip: str | None = None):
    """Members of random (stored) and repetitive (deflated) bytes; ``flip``: that member's data changed
    by one byte after writing, so only its CRC tells."""
    rng = random.Random(0)
    contents = {}
    with zipfile.ZipFile(path, "w") as out:
        for i, size in enumerate(SIZES):
            name, method = f"call/{i:02d}.jpg", zipfile.ZIP_DEFLATED if i % 3 == 2 else zipfile.ZIP_STORED
            data = rng.randbytes(size) if method == zipfile.ZIP_STORED else bytes(range(200)) * 300
            out.writestr(zipfile.ZipInfo(name), data, compress_type=method)
            contents[name] = data
    if flip:
        raw = bytearray(path.read_bytes())
        raw[raw.find(contents[flip]) + 1000] ^= 0xFF
        path.write_bytes(bytes(raw))
    return contents


@pytest.fixture
def archive(s3_bucket, s3_env, tmp_path):
    """(locators in archive order, their expected bytes, counted GETs) for a fresh zip on S3."""

    counters = []

    def make(flip=None):
        contents = _zip(tmp_path / "frames.zip", flip)
        uri = upload(s3_env.client(), s3_bucket, "data/frames.zip", tmp_path / "frames.zip")
        sources.activate(S3Settings(endpoint_url=s3_env.endpoint_url))
        listing = sources.dataset_files(uri, ["call"])  # reads the central directory, before counting
        gets: list[int] = []
        client = reading._state.places.store(s3_bucket).client
        counters.append((client, lambda parsed, **_: gets.append(int(parsed["ContentLength"]))))
        client.meta.events.register("after-call.s3.GetObject", counters[-1][1])
        return [listing[name].locator for name in contents], contents, gets

    yield make
    for client, count in counters:  # the client is this process's, shared with later reads
        client.meta.events.unregister("after-call.s3.GetObject", count)
    sources.activate()


def test_coalesced_reads_give_the_bytes_of_single_reads_in_fewer_gets(archive):
    locators, contents, gets = archive()
    singles = [sources.read_bytes(loc) for loc in locators]  # no block: one GET per member, as before
    assert singles == list(contents.values()) and len(gets) == len(locators)

    gets.clear()
    with sources.prefetched(locators):
        together = [sources.read_bytes(loc) for loc in locators]
    assert together == singles
    assert len(gets) == 1  # 0.97 MB of neighbours: one GET, under even the first read's 1 MiB


def test_each_read_stays_under_the_chunk_and_the_reads_in_flight_under_the_depth(archive):
    locators, contents, gets = archive()
    chunk, depth = 300_000, 2
    with sources.prefetched(locators, depth=depth, chunk=chunk):
        together = []
        for loc in locators:
            assert len(prefetch._active.untaken) <= depth
            assert prefetch._active.held() <= 2 * chunk + max(SIZES) + 2048  # the last read started counts
            together.append(sources.read_bytes(loc))
    assert together == list(contents.values())
    *shared, alone = sorted(gets)  # the 500 kB member, over the chunk, is read alone: with its header
    assert all(n <= chunk for n in shared) and max(SIZES) < alone <= max(SIZES) + 2048
    assert len(prefetch.planned_reads(locators, chunk)) == len(gets) < len(locators)


def test_a_member_read_alone_counts_in_what_reads_ahead_hold(archive):
    locators, _, _ = archive()
    big = locators[SIZES.index(max(SIZES))]
    with sources.prefetched([big, *locators], depth=8, chunk=100_000):
        assert prefetch._active.held() > max(SIZES)  # the 500 kB member alone: nothing more starts
        assert len(prefetch._active.untaken) == 1


def test_a_block_inside_another_hands_its_reads_back(archive):
    locators, contents, gets = archive()
    with sources.prefetched(locators):
        outer = prefetch._active
        with sources.prefetched(locators[:1]):
            assert sources.read_bytes(locators[0]) == contents[next(iter(contents))]
        assert prefetch._active is outer
        together = [sources.read_bytes(loc) for loc in locators[1:]]
    assert together == list(contents.values())[1:] and prefetch._active is None


def test_a_corrupt_member_in_a_coalesced_read_is_its_own_error_and_spares_its_neighbours(archive):
    victim = "call/01.jpg"
    locators, contents, gets = archive(flip=victim)
    bad = locators[list(contents).index(victim)]
    with pytest.raises(ArchiveError) as alone:
        sources.read_bytes(bad)
    gets.clear()
    with sources.prefetched(locators):
        for loc, expected in zip(locators, contents.values(), strict=True):
            if loc == bad:
                with pytest.raises(ArchiveError) as together:
                    sources.read_bytes(loc)
            else:
                assert sources.read_bytes(loc) == expected
    assert str(together.value) == str(alone.value)
    assert all(part in str(together.value) for part in ("frames.zip", victim, "CRC-32"))
    assert len(gets) == 1 and bad in prefetch.planned_reads(locators)[0]  # it shared its neighbours' read


def _many_members(path):
    """A zip whose central directory (about 100 KB) starts well before the archive's last 64 KiB."""
    with zipfile.ZipFile(path, "w") as out:
        for i in range(800):
            out.writestr(f"call/{i:04d}-{'x' * 70}.jpg", b"x")


LAYOUTS = {  # what the archive's tail holds -> GETs for its central directory
    "directory in the tail": (lambda path: _zip(path), b"", 1),
    "behind a long comment": (lambda path: _zip(path), b"a comment longer than the probe " * 40, 1),
    "directory before the tail": (_many_members, b"", 2),
}


@pytest.mark.parametrize("layout", LAYOUTS)
def test_a_central_directory_on_s3_costs_a_get_or_two_and_reads_as_the_local_one(
    s3_bucket, s3_env, tmp_path, layout
):
    write, comment, expected_gets = LAYOUTS[layout]
    write(tmp_path / "frames.zip")
    with zipfile.ZipFile(tmp_path / "frames.zip", "a") as out:
        out.comment = comment
    uri = upload(s3_env.client(), s3_bucket, "data/frames.zip", tmp_path / "frames.zip")
    sources.activate(S3Settings(endpoint_url=s3_env.endpoint_url))
    try:
        gets: list[int] = []
        client, count = reading._state.places.store(s3_bucket).client, lambda **_: gets.append(1)
        client.meta.events.register("after-call.s3.GetObject", count)
        members = reading.archive_index(uri).members
    finally:
        client.meta.events.unregister("after-call.s3.GetObject", count)
        sources.activate()
    with zipfile.ZipFile(tmp_path / "frames.zip") as local:
        expected = {i.filename: (i.header_offset, i.CRC, i.file_size) for i in local.infolist()}
    assert {name: (m.offset, m.crc, m.size) for name, m in members.items()} == expected
    assert len(gets) == expected_gets  # the size comes with the tail: no listing, no HEAD
