"""prepare-data: the dataset's crop caches, built once (or fetched from `dataset.cache_uri`); with
`prepare.dask`, in shards: plan-prepare, prepare-shard mapped over a Dask cluster, finish-prepare."""

from __future__ import annotations

import logging

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from handgesture.config import Config
from handgesture.data.prepare import PreparedData, prepare_data
from handgesture.data.prepare_sharded import PreparePlan, finish_prepare, plan_prepare, prepare_shard
from handgesture.data.shards import Shard
from tasks.retry import RETRY_POLICY


def _library_logs() -> None:
    # The library logs what it found or built (PREFECT_LOGGING_EXTRA_LOGGERS); it needs the level set here.
    logging.getLogger("handgesture").setLevel(get_run_logger().getEffectiveLevel())


# The caches are keyed by content on disk; Prefect's own result caching would only hide a deleted cache.
@task(name="prepare-data", cache_policy=NO_CACHE, **RETRY_POLICY)
def prepare_data_task(config: Config) -> PreparedData:
    """What was prepared (each split's cache folder and key): the train and promote tasks open exactly it."""
    _library_logs()
    return prepare_data(config)


# A plan holds every sample: kept in memory, never persisted as a result.
@task(name="plan-prepare", cache_policy=NO_CACHE, persist_result=False, **RETRY_POLICY)
def plan_prepare_task(config: Config, workers: int) -> PreparePlan:
    """Each split's cache found, or the shards that will build it."""
    _library_logs()
    return plan_prepare(config, workers)


# Runs on a Dask worker. A worker lost mid-shard costs this shard only: Dask runs it again on another worker
# (and Prefect's retries cover a fault that raises); parts that finished are kept (`shards.build_part`).
@task(name="prepare-shard", cache_policy=NO_CACHE, persist_result=False, **RETRY_POLICY)
def prepare_shard_task(config: Config, shard: Shard) -> dict:
    """One part of a cache; its part.json."""
    _library_logs()
    return prepare_shard(config, shard)


@task(name="finish-prepare", cache_policy=NO_CACHE, **RETRY_POLICY)
def finish_prepare_task(config: Config, plan: PreparePlan) -> PreparedData:
    """Every cache assembled from its parts: what training opens."""
    _library_logs()
    return finish_prepare(config, plan)
