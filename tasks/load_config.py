"""load-config: YAML + dotlist overrides -> a validated config, as a plain dict for the next tasks."""

from __future__ import annotations

from prefect import task

from handgesture.config import flow_overrides, load_config, to_dict


@task(name="load-config")
def load_config_task(config_path: str | None, overrides: list[str] | None, storage: str | None) -> dict:
    """Resolve the config once at the flow's edge; `storage` (a URI) overrides `storage.uri`."""
    return to_dict(load_config(config_path, flow_overrides(overrides, storage)))
