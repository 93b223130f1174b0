"""The `sweep-hand-gesture-classifier` flow: a search space's trials, each a run of the train deployment,
narrowed rung by rung by successive halving (`handgesture.sweep`).

Every trial, at every rung, is a run of the `train-hand-gesture-classifier/train` deployment
(`run_deployment`) on that deployment's work pool, at most `concurrency` at a time: Prefect's workers do the
training, wherever the pool has them; this flow only plans and waits. A trial's next rung resumes its previous
run by `prefect://flow-runs/<id>`, so it continues exactly where it stopped. All trials write to one
experiment, so `tensorboard --logdir <storage>/<experiment>` compares them in one HParams view, the swept keys
included.
"""

from __future__ import annotations

import flows.settings  # noqa: F401  (this project's Prefect settings: before prefect is imported)

# isort: split

import contextvars
import json
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from prefect import flow
from prefect.artifacts import create_table_artifact
from prefect.deployments import run_deployment
from prefect.runtime import flow_run
from pydantic import Field
from tasks.artifact_keys import artifact_key
from tasks.load_config import load_config_task
from tasks.prepare import prepare_data_task
from tasks.promote import current_best_task, promote_task

from handgesture.checkpoints.prefect_refs import PREFIX, read_summary
from handgesture.config import flow_overrides, load_config
from handgesture.report import rounded
from handgesture.sweep import (
    DEFAULT_MAX_TRIALS,
    MAX_TRIALS_LIMIT,
    Trial,
    TrialRun,
    check_overrides,
    check_rungs,
    failed_rung,
    leaderboard,
    plan_trials,
    successive_halving,
)
from handgesture.sweep_tables import leaderboard_table, rungs_table

TRAIN_DEPLOYMENT = "train-hand-gesture-classifier/train"


class SweepFailed(RuntimeError):
    """Every trial of a rung failed: the leaderboard and the rungs are published, nothing is promoted."""


@flow(name="sweep-hand-gesture-classifier", log_prints=True, persist_result=True)
def sweep_hand_gesture_classifier(
    space: dict[str, Any],
    config: str | None = None,
    overrides: list[str] | None = None,
    mode: Literal["grid", "random"] = "grid",
    trials: Annotated[int, Field(ge=1)] = 8,
    rungs: list[int] | None = None,
    keep: Annotated[float, Field(gt=0.0, lt=1.0)] = 0.5,
    concurrency: Annotated[int, Field(ge=1)] = 4,
    storage: str | None = None,
    promote: bool = False,
    seed: int = 0,
    deployment: str = TRAIN_DEPLOYMENT,
    max_trials: Annotated[int, Field(ge=1, le=MAX_TRIALS_LIMIT)] = DEFAULT_MAX_TRIALS,
) -> list[dict[str, Any]]:
    """Train every trial of `space` to the first rung's epochs, then resume the best `keep` fraction to the
    next rung's, and so on; returns the leaderboard (also a table artifact), best first. When every trial of a
    rung fails, the leaderboard and the rungs are still published, and the flow run fails saying so.

    Args:
        space: Config keys to search, e.g. {"optimizer.lr": [0.01, 0.03], "model.name": ["ResNet18"]}; for
            random search also {"uniform": [low, high]}, {"log_uniform": [low, high]} or {"int": [low, high]}.
        config: Config YAML merged over configs/default.yaml, shared by all trials.
        overrides: Dotlist overrides shared by all trials (a trial's own values come after them).
        mode: grid (every combination) or random (`trials` points drawn with `seed`).
        trials: How many points a random search draws.
        rungs: Total epochs at each rung, increasing (default [1, 3]).
        keep: The fraction of trials that goes on to the next rung (at least one does).
        concurrency: At most this many train runs at a time.
        storage: Where the runs go: a local folder, file://... or s3://bucket/prefix.
        promote: Offer the winner's best checkpoint to the experiment's best pointer (promoted if it scores
            higher than the current best, as the scheduled retrain does).
        seed: The random search's seed.
        deployment: The train deployment each trial runs.
        max_trials: The most trials the sweep plans (a grid larger than this, or more random trials, is
            refused before any run starts).
    """
    rungs = rungs or [1, 3]
    planned = plan_trials(space, mode, trials, seed, max_trials)
    check_rungs(rungs, keep)
    check_overrides(overrides or [])
    shared = [*(overrides or []), f"tracking.hparams={json.dumps(sorted(space))}"]
    for trial in planned:  # a bad key or value fails here, before any run starts
        load_config(config, flow_overrides(_overrides(shared, trial, rungs[-1]), storage))
    sweep = _Sweep(deployment, flow_run.get_name() or "sweep", shared, config, storage, concurrency)
    runs = successive_halving(planned, rungs, keep, sweep.rung)
    board = leaderboard(planned, runs)
    _publish(board, runs, load_config(config, flow_overrides(shared, storage)).storage.experiment)
    failed = failed_rung(runs)
    if failed is not None:
        states = ", ".join(f"trial {r.trial}: {r.state}" for r in runs if r.rung == failed)
        raise SweepFailed(
            f"every trial of rung {failed + 1}/{len(rungs)} failed ({states}); the leaderboard and the rungs "
            "are published as this flow run's artifacts"
        )
    if promote and board[0]["best_f1"] is not None:
        _promote(board[0], planned[board[0]["trial"]], sweep)
    return board


def _overrides(shared: list[str], trial: Trial, epochs: int) -> list[str]:
    return [*shared, *trial.overrides, f"train_params.epochs={epochs}"]


@dataclass
class _Sweep:
    """What every trial run of one sweep shares."""

    deployment: str
    name: str
    shared: list[str]  # the overrides of every trial (its own come after)
    config: str | None
    storage: str | None
    concurrency: int

    def rung(self, jobs: list[tuple[Trial, TrialRun | None]], rung: int, epochs: int) -> list[TrialRun]:
        """Train each (trial, its previous rung's run) to `epochs`, at most `concurrency` at a time."""
        print(f"rung {rung + 1}: {len(jobs)} trials to {epochs} epochs")
        with ThreadPoolExecutor(min(self.concurrency, len(jobs))) as pool:
            # Each thread runs in a copy of this flow run's context, so the runs are this flow's subflows.
            futures = [
                pool.submit(contextvars.copy_context().run, self.run_trial, trial, previous, rung, epochs)
                for trial, previous in jobs
            ]
            return [future.result() for future in futures]

    def run_trial(self, trial: Trial, previous: TrialRun | None, rung: int, epochs: int) -> TrialRun:
        """One run of the train deployment; a later rung resumes the trial's previous run exactly."""
        parameters = {
            "config": self.config,
            "overrides": _overrides(self.shared, trial, epochs),
            "storage": self.storage,
            "resume": f"{PREFIX}{previous.flow_run_id}" if previous else None,
        }
        run = run_deployment(
            self.deployment,
            parameters=parameters,
            flow_run_name=f"{self.name}-trial-{trial.number}-rung-{rung + 1}",
            timeout=None,
            poll_interval=2,
        )
        state = run.state
        result = TrialRun(trial.number, rung, epochs, str(run.id), state.name if state else "unknown")
        summary = read_summary(run.id) if state is not None and state.is_completed() else None
        if summary is not None:
            result.best_metric, result.run_uri = summary.best_metric, summary.run_uri
            result.best_checkpoint, result.last_checkpoint = summary.best_checkpoint, summary.last_checkpoint
            result.resumed_from = summary.resumed_from
            result.epochs_trained, result.stopped_early = summary.epochs, summary.stopped_early
        print(
            f"trial {trial.number} ({' '.join(trial.overrides)}), rung {rung + 1}: {result.state}, "
            f"F1 {rounded(result.best_metric)}"
            + (f" ({result.stopped_early})" if result.stopped_early else "")
        )
        return result


def _publish(board: list[dict[str, Any]], runs: list[TrialRun], experiment: str) -> None:
    create_table_artifact(
        leaderboard_table(board),
        key=artifact_key(experiment, "sweep-leaderboard"),
        description="the sweep's trials, best first: each trial's last rung",
    )
    create_table_artifact(
        rungs_table(runs),
        key=artifact_key(experiment, "sweep-rungs"),
        description="every rung of every trial, with its score and where it resumed from",
    )


def _promote(winner: dict[str, Any], trial: Trial, sweep: _Sweep) -> None:
    """Offer the winner's best checkpoint to the experiment's best pointer (promoted only if it wins)."""
    overrides = _overrides(sweep.shared, trial, winner["epochs"])
    resolved, _ = load_config_task(sweep.config, overrides, sweep.storage)
    prepared = prepare_data_task(resolved)
    promote_task(resolved, read_summary(winner["flow_run"]), current_best_task(resolved), prepared)
