"""Data read where it lives, on S3 (a real moto server): a prefix, a zip, per-gesture zips and zip:// chains
read as the plain folder is; keys from ETags and central directories, fetched in kilobytes; a missing
object or prefix and refused credentials are one error naming the URI, exit 2; a listing that fails after
its first page is one error, never part of a prefix."""

from contextlib import contextmanager

import pytest
import torch

from handgesture.data import reading, sources
from handgesture.data.annotations import image_name, read_annotations
from handgesture.data.archives import TAIL_BYTES
from handgesture.data.cache import cache_key, cache_settings
from handgesture.data.frames import read_frame
from handgesture.errors import (
    BucketNotFoundError,
    DataError,
    InputError,
    StorageCredentialsError,
    StorageUnreachableError,
)
from handgesture.storage import S3Settings, s3_clients
from tests.archive_data import per_gesture_zips, tutorial_zips, upload

TARGETS = ["call", "fist", "like"]
SETTINGS = cache_settings((32, 32))


@pytest.fixture(scope="module")
def local(tmp_path_factory):
    from handgesture.data.synthetic import generate_synthetic

    root = tmp_path_factory.mktemp("s3-layouts")
    data = generate_synthetic(root / "plain", per_class=3, users=2, frame_size=(64, 64), targets=TARGETS)
    zips = tutorial_zips(data, root / "tutorial")
    return {"plain": data, "zips": zips, "hagrid": per_gesture_zips(data["dataset"], root / "hagrid")}


@pytest.fixture
def bucket(s3_bucket, s3_env, local):
    """The layouts on S3: a prefix of files, the tutorial's two zips, HaGRID's per-gesture zips."""
    client = s3_env.client()
    upload(client, s3_bucket, "plain/images", local["plain"]["dataset"])
    upload(client, s3_bucket, "plain/annotations", local["plain"]["annotations"])
    upload(client, s3_bucket, "data/subsample.zip", local["zips"]["dataset"])
    upload(client, s3_bucket, "data/subsample-annotations.zip", local["zips"]["annotations"])
    upload(client, s3_bucket, "hagrid", local["hagrid"])
    sources.activate(S3Settings(endpoint_url=s3_env.endpoint_url))
    yield s3_bucket
    sources.activate()


def _rows(found):
    return [(image_name(s.image), s.box, s.gesture, s.leading_hand, s.user_id) for s in found.samples]


def test_every_form_on_s3_reads_what_the_plain_folder_holds(bucket, local):
    expected = read_annotations(local["plain"]["annotations"], local["plain"]["dataset"], TARGETS)
    s3 = f"s3://{bucket}"
    forms = {
        "prefix": (f"{s3}/plain/annotations", f"{s3}/plain/images"),
        "tutorial zips, top folder entered": (
            f"{s3}/data/subsample-annotations.zip",
            f"{s3}/data/subsample.zip",
        ),
        "chain, per-gesture zips": (
            f"zip://ann_subsample::{s3}/data/subsample-annotations.zip",
            f"{s3}/hagrid",
        ),
    }
    for name, (annotations, dataset) in forms.items():
        found = read_annotations(annotations, dataset, TARGETS)
        assert _rows(found) == _rows(expected), name
        assert found.samples[0].image.startswith(s3), name
        assert torch.equal(read_frame(found.samples[-1].image), read_frame(expected.samples[-1].image)), name


def test_an_s3_key_changes_with_one_object_and_is_fetched_in_kilobytes(bucket, local, s3_env):
    found = read_annotations(
        f"s3://{bucket}/data/subsample-annotations.zip", f"s3://{bucket}/hagrid", TARGETS
    )
    key = cache_key(found.samples, SETTINGS, [], TARGETS)
    sources.activate(S3Settings(endpoint_url=s3_env.endpoint_url))  # cold: central directories read again
    with _counted_fetches(bucket) as fetched:
        assert cache_key(found.samples, SETTINGS, [], TARGETS) == key
    assert len(fetched) == 3 and max(fetched) <= TAIL_BYTES  # one tail per archive, whatever its size

    prefix = read_annotations(f"s3://{bucket}/plain/annotations", f"s3://{bucket}/plain/images", TARGETS)
    before = cache_key(prefix.samples, SETTINGS, [], TARGETS)
    victim = prefix.samples[0].image.split(f"s3://{bucket}/", 1)[1]
    s3_env.client().put_object(Bucket=bucket, Key=victim, Body=b"another frame")
    sources.activate(S3Settings(endpoint_url=s3_env.endpoint_url))
    again = read_annotations(f"s3://{bucket}/plain/annotations", f"s3://{bucket}/plain/images", TARGETS)
    assert cache_key(again.samples, SETTINGS, [], TARGETS) != before


def test_a_cold_read_of_the_tutorial_zips_on_s3_costs_three_gets(bucket):
    with _counted_fetches(bucket) as fetched:
        found = read_annotations(
            f"s3://{bucket}/data/subsample-annotations.zip", f"s3://{bucket}/data/subsample.zip", TARGETS
        )
    assert found.samples and len(fetched) == 3  # each archive's tail, then the three annotation files in one


@contextmanager
def _counted_fetches(bucket: str):
    """Bytes of each GET this process's S3 reads make inside the block (its client outlives the block)."""
    fetched: list[int] = []
    client = reading._state.places.store(bucket).client
    count = lambda parsed, **_: fetched.append(int(parsed.get("ContentLength", 0)))  # noqa: E731
    client.meta.events.register("after-call.s3.GetObject", count)
    try:
        yield fetched
    finally:
        client.meta.events.unregister("after-call.s3.GetObject", count)


@pytest.mark.parametrize("where", ["data/absent.zip", "absent-prefix"])
def test_a_missing_object_or_prefix_is_one_error_naming_it(bucket, local, where):
    uri = f"s3://{bucket}/{where}"
    with pytest.raises(DataError) as info:
        read_annotations(f"s3://{bucket}/data/subsample-annotations.zip", uri, TARGETS)
    assert uri in str(info.value) and "\n" not in str(info.value)


def test_credentials_the_bucket_refuses_are_bad_input_naming_the_uri(bucket, s3_env, monkeypatch, capsys):
    from handgesture_cli.main import main as handgesture

    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not-the-secret")
    sources.activate(S3Settings(endpoint_url=s3_env.endpoint_url))
    uri = f"s3://{bucket}/data/subsample.zip"
    with s3_env.auth_enforced():
        with pytest.raises(StorageCredentialsError) as info:
            read_annotations(f"s3://{bucket}/data/subsample-annotations.zip", uri, TARGETS)
        argv = ["prepare", f"dataset.annotations={uri}", f"dataset.dataset={uri}"]
        assert handgesture([*argv, f"storage.endpoint_url={s3_env.endpoint_url}"]) == 2
    assert isinstance(info.value, InputError) and bucket in str(info.value)
    err = capsys.readouterr().err
    assert bucket in err and "not-the-secret" not in err and "not-the-secret" not in str(info.value)


@pytest.fixture
def paged(s3_env, monkeypatch):
    """Every S3 client made from here on lists in pages of 2 keys (the server's own paging, in smaller
    pages), and `paged["fault"]()` runs once the first page of a listing of `plain/images/` has arrived,
    before the next page is asked for."""
    import botocore.handlers

    state = {"fault": None, "fired": False}

    def small_pages(params, **_):
        params["MaxKeys"] = 2

    def after_a_page(parsed, **_):
        first = parsed.get("IsTruncated") and "ContinuationToken" not in parsed
        if first and parsed.get("Prefix", "").endswith("plain/images/") and not state["fired"]:
            state["fired"] = True
            state["fault"]()

    hooks = [
        ("before-parameter-build.s3.ListObjectsV2", small_pages),
        ("after-call.s3.ListObjectsV2", after_a_page),
    ]
    monkeypatch.setattr(botocore.handlers, "BUILTIN_HANDLERS", [*botocore.handlers.BUILTIN_HANDLERS, *hooks])
    monkeypatch.setattr(s3_clients, "shared", s3_clients.SharedClients())  # none made before the hooks
    return state


def _delete_bucket(client, bucket: str) -> None:
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        keys = [{"Key": o["Key"]} for o in page.get("Contents", [])]
        if keys:
            client.delete_objects(Bucket=bucket, Delete={"Objects": keys})
    client.delete_bucket(Bucket=bucket)


FAULTS = {
    "bucket deleted": (BucketNotFoundError, 2, "S3 bucket '{bucket}' does not exist"),  # bad input
    "server gone": (StorageUnreachableError, 1, "could not reach S3 endpoint {endpoint}"),  # may pass
}


def _fault(name: str, bucket: str, s3_env):
    admin = s3_env.client()  # made before the fault, without the test's hooks
    return (lambda: _delete_bucket(admin, bucket)) if name == "bucket deleted" else s3_env.stop


@pytest.mark.parametrize("fault", FAULTS)
def test_a_listing_that_fails_after_its_first_page_is_one_error_not_part_of_the_prefix(
    bucket, s3_env, paged, fault
):
    error, _, says = FAULTS[fault]
    paged["fault"] = _fault(fault, bucket, s3_env)
    sources.activate(S3Settings(endpoint_url=s3_env.endpoint_url, max_retries=0))
    with pytest.raises(error) as info:
        sources.dataset_files(f"s3://{bucket}/plain/images", TARGETS)
    assert paged["fired"] and says.format(bucket=bucket, endpoint=s3_env.endpoint_url) in str(info.value)


@pytest.mark.parametrize("fault", FAULTS)
def test_the_prepare_command_on_a_listing_that_fails_midway_exits_in_one_line_and_writes_nothing(
    bucket, s3_env, paged, tmp_path, capsys, fault
):
    from handgesture_cli.main import main as handgesture

    _, status, says = FAULTS[fault]
    paged["fault"] = _fault(fault, bucket, s3_env)
    argv = [
        f"dataset.annotations=s3://{bucket}/plain/annotations",
        f"dataset.dataset=s3://{bucket}/plain/images",
    ]
    argv += [f"dataset.targets=[{','.join(TARGETS)}]", f"dataset.cache_dir={tmp_path / 'cache'}"]
    argv += [f"storage.endpoint_url={s3_env.endpoint_url}", "storage.max_retries=0"]
    assert handgesture(["prepare", *argv]) == status
    err = capsys.readouterr().err.strip().splitlines()
    assert paged["fired"] and not (tmp_path / "cache").exists()
    assert len(err) == 1 and err[0].startswith("error: ") and s3_env.secret_key not in err[0]
    assert says.format(bucket=bucket, endpoint=s3_env.endpoint_url) in err[0]
