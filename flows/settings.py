"""The Prefect settings this project's programs run with unless the user sets them. Prefect reads them when
it is imported, so every flow module and the `handgesture` command import this first. They are what
`make demo` runs with, so a printed command typed into a fresh shell behaves as the demo did."""

from __future__ import annotations

import os

DEFAULTS = {
    # Library log lines (logging.getLogger("handgesture...")) reach the Prefect UI ...
    "PREFECT_LOGGING_EXTRA_LOGGERS": "handgesture",
    # ... and outside a flow run (run_training in a notebook) they go to the console only, without a warning.
    "PREFECT_LOGGING_TO_API_WHEN_MISSING_FLOW": "ignore",
    # The ephemeral API server took 20-60 s to start on a loaded 2-core machine; Prefect waits 20 s.
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120",
    # No usage telemetry from a user's runs unless they ask for it (a blocked network made it log errors).
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "DO_NOT_TRACK": "1",
}
STARTUP_TIMEOUT = "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS"
_SERVER_TIMED_OUT = "Timed out while attempting to connect to ephemeral Prefect API server"


def apply_defaults() -> None:
    for name, value in DEFAULTS.items():
        os.environ.setdefault(name, value)


def server_start_failure(exc: BaseException) -> str | None:
    """One line for Prefect's ephemeral server failing to start (naming the setting to raise), else None."""
    if not isinstance(exc, RuntimeError) or _SERVER_TIMED_OUT not in str(exc):
        return None
    return (
        f"Prefect's temporary API server did not start within {os.environ.get(STARTUP_TIMEOUT)} s: raise "
        f"{STARTUP_TIMEOUT} (a busy machine needs more), or start a server (prefect server start) and set "
        "PREFECT_API_URL to it"
    )


apply_defaults()
