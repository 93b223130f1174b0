"""The prepare step of a flow: in the flow's process as ever, or, with `prepare.dask`, in shards on a Dask
cluster through prefect-dask's DaskTaskRunner.

A flow's task runner is fixed where the flow is defined; the cluster comes from the run's config, so the
sharded prepare is a subflow given its runner per run (`with_options`). `local:N` starts a LocalCluster of N
one-thread worker processes for the subflow and closes it after; `tcp://HOST:PORT` connects to a running
scheduler (docs/deployments.md: one on Kubernetes), only one this machine lists in HANDGESTURE_DASK_SCHEDULERS
(`config_checks.check_dask`), and plans shards for the worker threads that scheduler reports.
"""

from __future__ import annotations

import flows.settings  # noqa: F401  (this project's Prefect settings: before prefect is imported)

# isort: split

from typing import TYPE_CHECKING

from prefect import flow
from prefect.futures import wait
from prefect.settings import get_current_settings
from prefect.utilities.annotations import unmapped
from tasks.prepare import finish_prepare_task, plan_prepare_task, prepare_data_task, prepare_shard_task

from handgesture.config import Config
from handgesture.config_checks import check_dask
from handgesture.data.prepare import PreparedData

if TYPE_CHECKING:
    from prefect_dask import DaskTaskRunner

SCHEDULER_TIMEOUT_S = 30


def prepare_step(config: Config) -> PreparedData:
    """PreparedData, from one prepare-data task or, with `prepare.dask`, the sharded subflow."""
    if not config.prepare.dask:
        return prepare_data_task(config)
    runner, workers = dask_runner(config.prepare.dask)
    return prepare_on_dask.with_options(task_runner=runner)(config, workers)


@flow(name="prepare-data-on-dask", validate_parameters=False, persist_result=False)
def prepare_on_dask(config: Config, workers: int = 1) -> PreparedData:
    """plan-prepare here, prepare-shard on the cluster's workers, finish-prepare here."""
    plan = plan_prepare_task(config, workers)
    parts = prepare_shard_task.map(unmapped(config), plan.shards(config))
    wait(parts)
    parts.result()  # a shard that failed all its tries fails the step (finished parts stay for a rerun)
    return finish_prepare_task(config, plan)


def dask_runner(address: str) -> tuple[DaskTaskRunner, int]:
    """The task runner for `prepare.dask` and how many shards the cluster runs at once."""
    from prefect_dask import DaskTaskRunner  # imports dask and distributed: only for a run that uses them

    check_dask(address)  # again where the client connects: the config was checked, but on which machine?
    if address.startswith("local:"):
        workers = int(address.split(":", 1)[1])
        cluster = {"n_workers": workers, "threads_per_worker": 1, "processes": True}
        cluster["dashboard_address"] = None
        cluster["env"] = _api_env()
        return DaskTaskRunner(cluster_kwargs=cluster), workers
    return DaskTaskRunner(address=address), scheduler_slots(address)


def scheduler_slots(address: str) -> int:
    """The worker threads the scheduler at `address` has now (at least 1: a cluster still scaling up gets
    its workers later), so that each gets a shard."""
    from distributed import Client

    try:
        with Client(address, timeout=SCHEDULER_TIMEOUT_S, set_as_default=False) as client:
            return max(1, sum(client.nthreads().values()))
    except OSError as exc:  # distributed's timeout is an OSError too
        raise ConnectionError(
            f"prepare.dask={address}: no Dask scheduler answered there within {SCHEDULER_TIMEOUT_S} s ({exc})"
        ) from None


def _api_env() -> dict[str, str]:
    """Local workers report their task runs to this process's Prefect API (else each would start an
    ephemeral API of its own, and the runs would show nowhere)."""
    url = get_current_settings().api.url
    if not url:
        from prefect.server.api.server import SubprocessASGIServer

        server = SubprocessASGIServer()  # the ephemeral API this process runs on, if any
        url = server.api_url if server.running else None
    return {"PREFECT_API_URL": url} if url else {}
