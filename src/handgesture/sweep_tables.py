"""A sweep's tables as the Prefect UI shows them: short headers, scores at 4 digits, runs by their folder's
name, so every header shows at 1280 px (report_layout's limits). The sweep flow's result keeps the full
leaderboard (checkpoint URIs included); each trial's own run publishes its full URIs."""

from __future__ import annotations

from typing import Any

from handgesture.report import rounded
from handgesture.sweep import TrialRun


def leaderboard_table(board: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """`sweep.leaderboard`'s rows, best first; the run last (the widest column)."""
    return [
        {
            "trial": row["trial"],
            "f1": rounded(row["best_f1"]),
            "epochs": row["epochs"],
            "state": row["state"],
            "overrides": row["overrides"],
            "run": _run_name(row["run_uri"]),
        }
        for row in board
    ]


def rungs_table(runs: list[TrialRun]) -> list[dict[str, Any]]:
    """Every rung of every trial: its score, its run, and the flow run to resume or evaluate it by."""
    return [
        {
            "trial": run.trial,
            "rung": run.rung + 1,
            "epochs": run.epochs if run.epochs_trained is None else run.epochs_trained,
            "state": run.state,
            "f1": rounded(run.best_metric),
            "early": run.stopped_early is not None,
            "run": _run_name(run.run_uri),
            "flow_run": run.flow_run_id,
        }
        for run in runs
    ]


def _run_name(uri: str | None) -> str | None:
    """The run folder's name: its URI's last part."""
    return None if uri is None else uri.rstrip("/").rsplit("/", 1)[-1]
