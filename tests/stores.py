"""The `store` fixture, for tests that must hold for every store: a local folder, and S3 on moto_server."""

from pathlib import Path

import pytest

from handgesture.storage import S3Settings, Store, open_store


@pytest.fixture(params=["local", pytest.param("s3", marks=pytest.mark.s3)])
def store(request, tmp_path: Path) -> Store:
    if request.param == "local":
        return open_store(str(tmp_path / "runs"))
    server, bucket = request.getfixturevalue("s3_env"), request.getfixturevalue("s3_bucket")
    return open_store(f"s3://{bucket}/runs", S3Settings(endpoint_url=server.endpoint_url))
