"""docs/deployments.md's local PostgreSQL: no Docker engine runs here, so its `docker run` line is checked
for what a test can check without one: the container's user, password, database and port are the ones the
server's connection URL on the next line uses, through the asyncpg driver Prefect needs, and the image is a
pinned major version. The second line's `make server` is the target tests/e2e/test_make_targets.py runs."""

import shlex
from urllib.parse import urlsplit

from tests.e2e.docs import block


def test_the_postgres_container_and_the_servers_connection_url_agree():
    docker, server = block("A local PostgreSQL for trying it")
    assert docker[:3] == ["docker", "run", "-d"]
    env = dict(docker[i + 1].split("=", 1) for i, word in enumerate(docker) if word == "-e")
    published = docker[docker.index("-p") + 1]
    image = docker[-1]
    assert image.startswith("postgres:") and image.split(":")[1].isdigit()

    setting, _, target = shlex.join(server).partition(" ")
    name, url = setting.split("=", 1)
    assert name == "PREFECT_API_DATABASE_CONNECTION_URL" and target == "make server"
    parts = urlsplit(url)
    assert parts.scheme == "postgresql+asyncpg"
    assert (parts.username, parts.password) == (env["POSTGRES_USER"], env["POSTGRES_PASSWORD"])
    assert parts.path.lstrip("/") == env["POSTGRES_DB"]
    assert f"{parts.port}:5432" == published and parts.hostname == "127.0.0.1"
