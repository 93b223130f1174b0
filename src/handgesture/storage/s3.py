"""The ``s3://`` store, configured through prefect-aws's ``S3Bucket`` block.

The block (built here, or loaded from a saved block) supplies bucket, folder and credentials; the operations
go through a boto3 client made from the block's credentials. The block's own sync methods turn into
coroutines whenever an event loop is running (``async_dispatch``), and prefect-aws caches clients
process-wide by credential hash, which would pin credentials read from the environment at first use. The
clients themselves: `s3_clients`.
"""

from __future__ import annotations

import io
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from boto3.exceptions import RetriesExceededError, S3UploadFailedError
from boto3.s3.transfer import TransferConfig
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    CredentialRetrievalError,
    HTTPClientError,
    NoCredentialsError,
    PartialCredentialsError,
    ReadTimeoutError,
)
from botocore.exceptions import ConnectionError as BotoConnectionError
from prefect_aws import AwsCredentials, MinIOCredentials, S3Bucket

from handgesture.errors import (
    BucketNotFoundError,
    InvalidStorageURIError,
    ObjectNotFoundError,
    StorageCredentialsError,
    StorageError,
    StorageNotAnsweringError,
    StorageUnreachableError,
)
from handgesture.storage import s3_clients
from handgesture.storage.base import S3Settings, Store, check_key
from handgesture.storage.local import atomic_target

DEFAULT_CHAIN = "default AWS credential chain (environment/profile/instance role)"
BLOCK_TYPES = {
    "s3-bucket": S3Bucket,
    "aws-credentials": AwsCredentials,
    "minio-credentials": MinIOCredentials,
}
_AUTH_CODES = {"InvalidAccessKeyId", "SignatureDoesNotMatch", "AccessDenied", "403", "Forbidden"}
_AUTH_CODES |= {"ExpiredToken", "InvalidToken", "TokenRefreshRequired", "InvalidClientTokenId"}
_NOT_FOUND_CODES = {"NoSuchKey", "404", "NotFound"}


def load_block(ref: str) -> S3Bucket | AwsCredentials | MinIOCredentials:
    kind, _, name = ref.partition("/")
    if kind not in BLOCK_TYPES or not name:
        expected = ", ".join(f"{k}/<name>" for k in BLOCK_TYPES)
        raise InvalidStorageURIError(f"invalid S3 block reference {ref!r}: expected one of {expected}")
    try:  # _sync=True: a plain value even when an event loop is running in this thread
        return BLOCK_TYPES[kind].load(name, _sync=True)
    except Exception as exc:
        raise InvalidStorageURIError(
            f"could not load saved Prefect block {ref!r}: {type(exc).__name__}: {exc}"
        ) from exc


def build_bucket(bucket_name: str, prefix: str, s3: S3Settings) -> tuple[S3Bucket, str]:
    """The S3Bucket block for ``s3://bucket_name/prefix`` and a secret-free name of its credentials."""
    if s3.block is None:
        creds, who = AwsCredentials(), DEFAULT_CHAIN
    else:
        block, who = load_block(s3.block), f"credentials of saved Prefect block {s3.block!r}"
        if isinstance(block, S3Bucket) and block.bucket_name != bucket_name:
            raise InvalidStorageURIError(
                f"S3 block {s3.block!r} is for bucket {block.bucket_name!r}, "
                f"but the URI names bucket {bucket_name!r}"
            )
        creds = block.credentials if isinstance(block, S3Bucket) else block
    update: dict = {}
    if s3.endpoint_url:
        update["aws_client_parameters"] = creds.aws_client_parameters.model_copy(
            update={"endpoint_url": s3.endpoint_url}
        )
    if s3.region:
        update["region_name"] = s3.region
    creds = creds.model_copy(update=update) if update else creds
    return S3Bucket(bucket_name=bucket_name, bucket_folder=prefix, credentials=creds), who


class S3Store(Store):
    def __init__(self, bucket_name: str, prefix: str, s3: S3Settings, shared: bool = False):
        """``shared``: the client is this process's shared one for these settings
        (`s3_clients.SharedClients`), not made for this store alone."""
        self.bucket, self._who = build_bucket(bucket_name, prefix, s3)
        self._shared = shared
        self.root = f"s3://{bucket_name}/{prefix}" if prefix else f"s3://{bucket_name}"
        self._s3 = s3
        self._transfer = TransferConfig(
            multipart_threshold=s3.multipart_threshold,
            multipart_chunksize=s3.multipart_chunksize,
            max_concurrency=s3.max_concurrency,
        )
        self.endpoint = self.bucket.credentials.aws_client_parameters.endpoint_url or "the AWS S3 endpoint"
        self._client = None
        self._lock = threading.Lock()

    @property
    def client(self):
        """The boto3 client, made on first use after checking that the bucket exists and is accessible."""
        with self._lock:
            if self._client is None:
                with self._errors(self.root, missing="bucket"):
                    make = s3_clients.shared.get if self._shared else s3_clients.make_client
                    client = make(self.bucket.credentials, self._s3)
                    self.endpoint = client.meta.endpoint_url
                    client.head_bucket(Bucket=self.bucket.bucket_name)
                self._client = client
        return self._client

    def describe(self) -> str:
        return f"{self.root} at endpoint {self.endpoint}"

    def _key(self, key: str) -> str:
        key = check_key(key, self.root)
        return f"{self.bucket.bucket_folder}/{key}" if self.bucket.bucket_folder else key

    def put_file(self, local_path: Path, key: str) -> None:
        with self._errors(self.uri(key)):
            self.client.upload_file(
                str(local_path), self.bucket.bucket_name, self._key(key), Config=self._transfer
            )

    def put_bytes(self, data: bytes, key: str) -> None:
        with self._errors(self.uri(key)):
            self.client.upload_fileobj(
                io.BytesIO(data), self.bucket.bucket_name, self._key(key), Config=self._transfer
            )

    def get_file(self, key: str, local_path: Path) -> Path:
        local_path = Path(local_path)
        with self._errors(self.uri(key)), atomic_target(local_path) as tmp:
            self.client.download_file(
                self.bucket.bucket_name, self._key(key), str(tmp), Config=self._transfer
            )
        return local_path

    def get_bytes(self, key: str) -> bytes:
        buffer = io.BytesIO()
        with self._errors(self.uri(key)):
            self.client.download_fileobj(
                self.bucket.bucket_name, self._key(key), buffer, Config=self._transfer
            )
        return buffer.getvalue()

    def _head(self, key: str) -> dict | None:
        try:
            with self._errors(self.uri(key)):
                return self.client.head_object(Bucket=self.bucket.bucket_name, Key=self._key(key))
        except ObjectNotFoundError:
            return None

    def exists(self, key: str) -> bool:
        return self._head(key) is not None

    def etag(self, key: str) -> str | None:
        head = self._head(key)
        if head is None:
            raise ObjectNotFoundError(f"no such object: {self.uri(key)}")
        return head["ETag"]

    def list(self, prefix: str = "") -> list[str]:
        if prefix.startswith("/") or ".." in prefix.split("/"):
            raise InvalidStorageURIError(
                f"invalid prefix {prefix!r} under {self.root}: expected a relative key prefix"
            )
        folder = f"{self.bucket.bucket_folder}/" if self.bucket.bucket_folder else ""
        keys = []
        with self._errors(self.uri(prefix.strip("/"))):
            pages = self.client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket.bucket_name, Prefix=folder + prefix
            )
            for page in pages:
                keys.extend(obj["Key"][len(folder) :] for obj in page.get("Contents", []))
        return sorted(keys)

    def objects(self, prefix: str) -> list[tuple[str, int, str]]:
        """(key, size, ETag) of every object under ``prefix`` (keys relative to the root), the whole listing
        or an error: a page that fails fails the listing, so nothing runs on part of a prefix."""
        folder = f"{self.bucket.bucket_folder}/" if self.bucket.bucket_folder else ""
        found = []
        with self._errors(self.uri(prefix.strip("/"))):
            pages = self.client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket.bucket_name, Prefix=folder + prefix
            )
            for page in pages:
                found += [(o["Key"][len(folder) :], o["Size"], o["ETag"]) for o in page.get("Contents", [])]
        return found

    def get_range(self, key: str, start: int, length: int) -> bytes:
        """Bytes ``start`` .. ``start + length`` of an object (fewer at its end): one ranged GET."""
        with self._errors(self.uri(key)):
            span = f"bytes={start}-{start + length - 1}"
            answer = self.client.get_object(Bucket=self.bucket.bucket_name, Key=self._key(key), Range=span)
            return answer["Body"].read()

    def get_tail(self, key: str, length: int) -> tuple[bytes, int]:
        """The last ``length`` bytes of an object (all of a smaller one) and the object's size, from one
        suffix-range GET: its size costs no listing."""
        with self._errors(self.uri(key)):
            try:
                answer = self.client.get_object(
                    Bucket=self.bucket.bucket_name, Key=self._key(key), Range=f"bytes=-{length}"
                )
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") == "InvalidRange":
                    return b"", 0  # S3's answer for an empty object: no last bytes to range over
                raise
            data = answer["Body"].read()
        total = answer.get("ContentRange", "").rpartition("/")[2]  # "bytes 6-9/10"; none: the whole object
        return data[-length:], int(total) if total.isdigit() else len(data)

    def delete(self, key: str) -> None:
        with self._errors(self.uri(key)):
            self.client.delete_object(Bucket=self.bucket.bucket_name, Key=self._key(key))

    def read_versioned(self, key: str) -> tuple[bytes, str] | None:
        try:
            with self._errors(self.uri(key)):
                found = self.client.get_object(Bucket=self.bucket.bucket_name, Key=self._key(key))
                return found["Body"].read(), found["ETag"]
        except ObjectNotFoundError:
            return None

    def create_exclusive(self, data: bytes, key: str) -> bool:
        return self._put_if(data, key, IfNoneMatch="*")

    def replace_if(self, data: bytes, key: str, version: str) -> bool:
        return self._put_if(data, key, IfMatch=version)

    def _put_if(self, data: bytes, key: str, **condition: str) -> bool:
        """A conditional PUT (S3's If-None-Match / If-Match); False when the condition did not hold."""
        try:
            with self._errors(self.uri(key)):
                self.client.put_object(
                    Bucket=self.bucket.bucket_name, Key=self._key(key), Body=data, **condition
                )
            return True
        except StorageError as exc:
            if "PreconditionFailed" in str(exc) or "ConditionalRequestConflict" in str(exc):
                return False
            raise

    @contextmanager
    def _errors(self, uri: str, missing: str = "key") -> Iterator[None]:
        try:
            yield
        except S3UploadFailedError as exc:  # boto3 wraps the ClientError it was raised while handling
            raise self._translate(exc.__context__ or exc, uri, missing) from exc
        except RetriesExceededError as exc:
            raise self._translate(exc.last_exception, uri, missing) from exc
        except (ClientError, BotoCoreError) as exc:
            raise self._translate(exc, uri, missing) from exc

    def _translate(self, exc: BaseException, uri: str, missing: str) -> StorageError:
        bucket = self.bucket.bucket_name
        if isinstance(exc, ClientError):
            code = str(exc.response.get("Error", {}).get("Code", ""))
            if code == "NoSuchBucket" or (missing == "bucket" and code in _NOT_FOUND_CODES):
                return BucketNotFoundError(f"S3 bucket {bucket!r} does not exist at endpoint {self.endpoint}")
            if code in _NOT_FOUND_CODES:
                return ObjectNotFoundError(f"no such object: {uri}")
            if code in _AUTH_CODES:
                return StorageCredentialsError(
                    f"S3 at {self.endpoint} rejected the {self._who} for {uri} ({code}): "
                    "expected a valid access key, secret and permission on the bucket"
                )
            message = exc.response.get("Error", {}).get("Message", "")
            return StorageError(f"S3 request for {uri} at {self.endpoint} failed: {code}: {message}")
        if isinstance(exc, NoCredentialsError | PartialCredentialsError | CredentialRetrievalError):
            return StorageCredentialsError(f"no usable S3 credentials from the {self._who} for {uri}: {exc}")
        if isinstance(exc, ReadTimeoutError) and self._client is None:
            # Never answered at all (the first request checks the bucket): a wrong endpoint. Once it has
            # answered, a read timeout is an outage, a network cut mid-request, and is waited out.
            return StorageNotAnsweringError(
                f"S3 endpoint {self.endpoint} accepted the connection for {uri} but did not answer within "
                f"{self._s3.read_timeout}s, {self._s3.max_retries + 1} times: check storage.endpoint_url"
            )
        if isinstance(exc, BotoConnectionError | HTTPClientError):
            s3 = self._s3
            return StorageUnreachableError(
                f"could not reach S3 endpoint {self.endpoint} for {uri} after {s3.max_retries + 1} attempts "
                f"with exponential backoff (connect timeout {s3.connect_timeout}s, read timeout "
                f"{s3.read_timeout}s): {exc}"
            )
        return StorageError(f"S3 operation on {uri} at {self.endpoint} failed: {type(exc).__name__}: {exc}")
