"""boto3 clients for the ``s3://`` store: a private one per store, or (data reads, opened afresh by every
task) one shared per process and per identity, so a new task skips botocore's client setup."""

from __future__ import annotations

import hashlib
import json
import os
import threading

from botocore.config import Config
from prefect_aws import AwsCredentials, MinIOCredentials

from handgesture.storage.base import S3Settings


def make_client(creds: AwsCredentials | MinIOCredentials, s3: S3Settings):
    """A private boto3 S3 client with bounded retries and timeouts (a block's own config wins per key)."""
    return _client(creds.get_boto3_session(), creds, s3)


def _client(session, creds: AwsCredentials | MinIOCredentials, s3: S3Settings):
    params = creds.aws_client_parameters.get_params_override()
    ours = Config(
        retries={"max_attempts": s3.max_retries, "mode": "standard"},
        connect_timeout=s3.connect_timeout,
        read_timeout=s3.read_timeout,
        max_pool_connections=max(10, s3.max_concurrency + 2),
    )
    params["config"] = ours.merge(params["config"]) if "config" in params else ours
    if creds.region_name:
        params["region_name"] = creds.region_name
    return session.client("s3", **params)


class SharedClients:
    """This process's clients for stores opened with ``shared=True`` (data reads, opened afresh per task):
    one per everything that decides who a client talks as and where (the credentials its session resolves,
    endpoint and client parameters, region, retry and timeout settings, the AWS environment and config
    files), so a new task skips botocore's client setup (about 0.1 s) but never inherits another's identity.
    The key is a digest: no secret is kept in the clear. A client is thread-safe; a forked child makes its
    own."""

    LIMIT = 8  # rotated credentials make new keys: the oldest client goes

    def __init__(self):
        self.clients: dict[str, object] = {}
        self.lock = threading.Lock()
        self.pid = os.getpid()

    def get(self, creds: AwsCredentials | MinIOCredentials, s3: S3Settings):
        session = creds.get_boto3_session()
        key = _client_key(session, creds, s3)
        with self.lock:
            if self.pid != os.getpid():
                self.clients, self.pid = {}, os.getpid()
            if key not in self.clients:
                while len(self.clients) >= self.LIMIT:
                    del self.clients[next(iter(self.clients))]
                self.clients[key] = _client(session, creds, s3)
            return self.clients[key]


def _client_key(session, creds: AwsCredentials | MinIOCredentials, s3: S3Settings) -> str:
    """A digest of who a client made from ``session`` talks as, and where and how: resolved afresh each
    time (a rotated key, an edited config file, another endpoint or timeout: another key)."""
    found = session.get_credentials()
    who = list(found.get_frozen_credentials()) if found else None
    env = sorted((k, v) for k, v in os.environ.items() if k.upper().startswith(("AWS_", "HTTP", "NO_PROXY")))
    files = [os.environ.get("AWS_CONFIG_FILE", "~/.aws/config"), "~/.aws/credentials"]
    files.append(os.environ.get("AWS_SHARED_CREDENTIALS_FILE", ""))
    stamps = [_stamp(os.path.expanduser(path)) for path in files]
    where = [creds.aws_client_parameters.model_dump(mode="json"), creds.region_name, session.region_name]
    settings = [s3.max_retries, s3.connect_timeout, s3.read_timeout, s3.max_concurrency]
    text = json.dumps([who, env, stamps, where, settings, session.profile_name], default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def _stamp(path: str) -> tuple[int, int] | None:
    try:
        found = os.stat(path)
    except OSError:
        return None
    return found.st_mtime_ns, found.st_size


shared = SharedClients()  # this process's
