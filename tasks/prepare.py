"""prepare-data: the dataset's crop caches, built once (or fetched from `dataset.cache_uri`)."""

from __future__ import annotations

import logging

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from handgesture.config import Config
from handgesture.data.prepare import PreparedData, prepare_data
from tasks.retry import RETRY_POLICY


# The caches are keyed by content on disk; Prefect's own result caching would only hide a deleted cache.
@task(name="prepare-data", cache_policy=NO_CACHE, **RETRY_POLICY)
def prepare_data_task(config: Config) -> PreparedData:
    """What was prepared (each split's cache folder and key): the train and promote tasks open exactly it."""
    # The library logs what it found or built (PREFECT_LOGGING_EXTRA_LOGGERS); it needs the level set here.
    logging.getLogger("handgesture").setLevel(get_run_logger().getEffectiveLevel())
    return prepare_data(config)
