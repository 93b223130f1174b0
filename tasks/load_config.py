"""load-config: YAML + dotlist overrides, and a resume request resolved once into a start point -> the
run's validated config and where it starts, handed to every task after it."""

from __future__ import annotations

from prefect import task

from handgesture.checkpoints.start import StartPoint
from handgesture.config import Config, flow_overrides
from handgesture.training.resume import run_plan
from tasks.retry import RETRY_POLICY


@task(name="load-config", **RETRY_POLICY)
def load_config_task(
    config_path: str | None, overrides: list[str] | None, storage: str | None, resume: str | None = None
) -> tuple[Config, StartPoint | None]:
    """Resolve the config and the start point at the flow's edge; `storage` (a URI) overrides `storage.uri`.
    A resume continues the recipe of the one checkpoint file it resolved to, whose bytes the train task
    then loads (pinned by sha256), even if `<experiment>/best` moves meanwhile."""
    return run_plan(config_path, flow_overrides(overrides, storage), resume)
