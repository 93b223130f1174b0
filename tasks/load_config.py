"""load-config: YAML + dotlist overrides (or a resumed checkpoint's own config) -> a validated config, as a
plain dict for the next tasks."""

from __future__ import annotations

from prefect import task

from handgesture.config import flow_overrides, to_dict
from handgesture.training.resume import run_config
from tasks.retry import RETRY_POLICY


@task(name="load-config", **RETRY_POLICY)
def load_config_task(
    config_path: str | None, overrides: list[str] | None, storage: str | None, resume: str | None = None
) -> dict:
    """Resolve the config once at the flow's edge; `storage` (a URI) overrides `storage.uri`. A resume
    continues the config its checkpoint was trained with."""
    return to_dict(run_config(config_path, flow_overrides(overrides, storage), resume))
