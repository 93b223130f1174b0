"""URI-addressed object stores: local folders (`local`) and S3 through prefect-aws (`s3`), opened by URI.

base       the Store interface, S3 settings, key checks
factory    URI -> store (`open_store`), storage-root normalisation, S3 settings from a config
local      a folder, with atomic writes (temp + fsync + rename)
s3         s3://bucket/prefix through prefect-aws's S3Bucket block
download   verified local copies of stored objects
"""

from handgesture.storage.base import MiB, S3Settings, Store, check_key, sha256_file
from handgesture.storage.download import cached_download
from handgesture.storage.factory import SUPPORTED_SCHEMES, is_local, open_store, root_uri, s3_settings

__all__ = [
    "SUPPORTED_SCHEMES",
    "MiB",
    "S3Settings",
    "Store",
    "cached_download",
    "check_key",
    "is_local",
    "open_store",
    "root_uri",
    "s3_settings",
    "sha256_file",
]
