"""Artifact keys: stable per experiment, so the Prefect UI shows each one's history across runs."""

import re


def artifact_key(experiment: str, kind: str) -> str:
    # Prefect keys allow only lowercase letters, numbers and dashes.
    slug = re.sub(r"[^a-z0-9]+", "-", experiment.lower()).strip("-") or "experiment"
    return f"{slug}-{kind}"
