"""Flow run names that say what a run trains: `<experiment>-<model>-<two words>`."""

from __future__ import annotations

import re

from prefect.runtime import flow_run
from prefect.utilities.names import generate_slug

from handgesture.config import flow_overrides
from handgesture.errors import InputError, StorageError
from handgesture.training.resume import run_config


def training_run_name() -> str:
    """Named from the run's parameters (a resume: from its checkpoint's config). A config that cannot be read
    gives a plain name: the load-config task then reports the mistake."""
    params = flow_run.parameters
    overrides = flow_overrides(params.get("overrides"), params.get("storage"))
    try:
        config = run_config(params.get("config"), overrides, params.get("resume"))
        label = f"{config.storage.experiment}-{config.model.name}"
    except (InputError, StorageError):
        label = "handgesture"
    return f"{re.sub(r'[^a-z0-9]+', '-', label.lower()).strip('-')}-{generate_slug(2)}"
