"""Flow run names that say what a run trains: `<experiment>-<model>-<two words>`, for runs this process
starts; a deployment's run keeps the name it was created with."""

from __future__ import annotations

import re

from prefect.runtime import deployment, flow_run
from prefect.utilities.names import generate_slug

from handgesture.config import flow_overrides, load_config
from handgesture.errors import InputError, StorageError


def training_run_name() -> str:
    """Named from the run's own parameters, without opening a checkpoint (the load-config task resolves a
    resume, once): a resume that does not name its model says `resume`. A config that cannot be read gives
    a plain name: the load-config task then reports the mistake.

    A deployment's run was named when it was created (`prefect deployment run` and `make run` print that
    name, a sweep names its trials): renaming it as it starts would show the run in the UI under a name
    nobody was told, so it keeps its own."""
    if deployment.id and flow_run.name:
        return flow_run.name
    params = flow_run.parameters
    overrides = flow_overrides(params.get("overrides"), params.get("storage"))
    try:
        config = load_config(params.get("config"), overrides)
    except (InputError, StorageError):
        return _slug("handgesture")
    named = any(item.startswith("model.name=") for item in overrides)
    model = "resume" if params.get("resume") and not named else config.model.name
    return _slug(f"{config.storage.experiment}-{model}")


def _slug(label: str) -> str:
    return f"{re.sub(r'[^a-z0-9]+', '-', label.lower()).strip('-')}-{generate_slug(2)}"
