"""Where a flow run persists its results (the flow's and its tasks' return values): Prefect's local result
storage by default, and the run's own S3 bucket, through a saved `S3Bucket` block, when storage is `s3://`.

Prefect decorates result storage statically, but a run's storage is known only once its config is loaded, so
the flow switches its run's result store then (`persist_results_with`). The block is saved (one per bucket,
prefix and endpoint) because a persisted result names its storage by block id: that is how
`prefect://flow-runs/<id>` reads the result back from any machine that reaches the API and the bucket.
"""

from __future__ import annotations

import hashlib
from urllib.parse import urlparse

from prefect.context import FlowRunContext
from prefect_aws import S3Bucket

from handgesture.config import Config
from handgesture.storage import s3_settings
from handgesture.storage.s3 import build_bucket

RESULTS_FOLDER = "prefect-results"


def results_block(config: Config) -> S3Bucket | None:
    """A saved S3Bucket block for `<storage>/prefect-results/` when storage is s3://, else None (local)."""
    uri = urlparse(config.storage.uri)
    if uri.scheme != "s3":
        return None
    prefix = "/".join(part for part in (uri.path.strip("/"), RESULTS_FOLDER) if part)
    bucket, _ = build_bucket(uri.netloc, prefix, s3_settings(config.storage))
    identity = f"{config.storage.uri}|{config.storage.endpoint_url}|{config.storage.block}"
    bucket.save(f"handgesture-results-{hashlib.sha256(identity.encode()).hexdigest()[:12]}", overwrite=True)
    return bucket


def persist_results_with(config: Config) -> None:
    """From now on this flow run persists its results (its own and its tasks') in the config's storage."""
    block = results_block(config)
    context = FlowRunContext.get()
    if block is not None and context is not None:
        context.result_store = context.result_store.model_copy(update={"result_storage": block})
