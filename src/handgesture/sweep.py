"""A hyperparameter sweep's plan: trials from a search space, and successive halving over rungs of epochs.

A search space maps config keys to values: a list (each value, in a grid; one drawn at random otherwise) or,
for random search, a range: ``{"uniform": [low, high]}``, ``{"log_uniform": [low, high]}`` or
``{"int": [low, high]}`` (both ends included). Each trial is a list of ``key=value`` overrides.

Successive halving (Jamieson & Talwalkar, 2016) with exact resume: every trial trains to the first rung's
epochs; the best ``keep`` fraction resumes from its own last checkpoint up to the next rung's, and so on, so
no trial trains an epoch twice. Ranking is by the validation gesture F1 each trial's run reports as its best.
A trial that early stopping ended before its rung's epochs (`train_params.early_stopping`) is finished, not
failed: it is ranked by its best like the others, and a later rung resumes it with more epochs, where the
rule decides again.
The rungs own ``train_params.epochs``, so a space may not search it; a rung where every trial failed ends the
halving (nothing scored to resume). A sweep plans at most ``max_trials`` trials, a grid's size counted before
any trial is built.
"""

from __future__ import annotations

import itertools
import json
import math
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from handgesture.errors import ConfigError

MODES = ("grid", "random")
RANGES = ("uniform", "log_uniform", "int")
RUNG_KEYS = ("train_params.epochs",)  # set by each rung: a value from the space would be overwritten
DEFAULT_MAX_TRIALS = 256
MAX_TRIALS_LIMIT = 10_000  # a sweep is runs of a deployment: beyond this it is a mistake, not a plan


@dataclass(frozen=True)
class Trial:
    number: int
    overrides: tuple[str, ...]  # this trial's point in the space, as key=value


@dataclass
class TrialRun:
    """One rung of one trial: the flow run that trained it, and what it reported."""

    trial: int
    rung: int
    epochs: int
    flow_run_id: str
    state: str  # the flow run's final state name
    best_metric: float | None = None
    best_checkpoint: str | None = None
    last_checkpoint: str | None = None
    run_uri: str | None = None
    resumed_from: str | None = None
    epochs_trained: int | None = None  # what the run reached: fewer than `epochs` when it stopped early
    stopped_early: str | None = None  # why early stopping ended it before `epochs`


def plan_trials(
    space: dict[str, Any], mode: str, count: int, seed: int, max_trials: int = DEFAULT_MAX_TRIALS
) -> list[Trial]:
    """The trials of `space`: its whole grid, or `count` random points drawn with `seed`; at most
    `max_trials` of them."""
    _check_space(space, mode)
    check_max_trials(max_trials)
    if mode == "grid":
        # Counted before it is built: a product of long lists is too many trials to enumerate, let alone run.
        size = math.prod(len(values) for values in space.values())
        _check_count(size, max_trials, f"the grid has {size} trials ({_dimensions(space)})")
        keys = list(space)
        points = [dict(zip(keys, values, strict=True)) for values in itertools.product(*space.values())]
    else:
        if count < 1:
            raise ConfigError(f"a random sweep needs trials >= 1, got {count}")
        _check_count(count, max_trials, f"trials={count}")
        rng = random.Random(seed)
        points = [{key: _draw(spec, rng) for key, spec in space.items()} for _ in range(count)]
    return [Trial(i, tuple(f"{k}={_yaml(v)}" for k, v in p.items())) for i, p in enumerate(points)]


def check_max_trials(max_trials: int) -> None:
    if not 1 <= max_trials <= MAX_TRIALS_LIMIT:
        raise ConfigError(f"max_trials must be in [1, {MAX_TRIALS_LIMIT}], got {max_trials}")


def check_overrides(overrides: list[str]) -> None:
    """The overrides every trial shares may not set what the rungs set."""
    for override in overrides:
        _check_not_rung_controlled(override.split("=", 1)[0], f"override {override!r}")


def check_rungs(rungs: list[int], keep: float) -> None:
    if not rungs or any(r < 1 for r in rungs) or any(b <= a for a, b in itertools.pairwise(rungs)):
        raise ConfigError(f"rungs must be increasing epoch counts >= 1, got {rungs}")
    if not 0 < keep < 1:
        raise ConfigError(f"keep must be a fraction in (0, 1), got {keep}")


def survivors(runs: list[TrialRun], keep: float) -> list[int]:
    """The trials that go on to the next rung: the best `keep` fraction (at least one) of those that
    finished with a score; ties go to the lower trial number."""
    scored = sorted((-r.best_metric, r.trial) for r in runs if r.best_metric is not None)
    return sorted(trial for _, trial in scored[: max(1, math.ceil(len(runs) * keep))])


RungRunner = Callable[[list[tuple[Trial, TrialRun | None]], int, int], list[TrialRun]]


def successive_halving(
    trials: list[Trial], rungs: list[int], keep: float, run_rung: RungRunner
) -> list[TrialRun]:
    """Every rung's runs: `run_rung(jobs, rung, epochs)` trains each (trial, its previous rung's run) to
    `epochs`; the survivors of each rung go on. A rung where no trial scored ends it: nothing can resume."""
    runs: list[TrialRun] = []
    live: dict[int, TrialRun | None] = {trial.number: None for trial in trials}
    for rung, epochs in enumerate(rungs):
        done = run_rung(
            [(trial, live[trial.number]) for trial in trials if trial.number in live], rung, epochs
        )
        runs += done
        by_trial = {run.trial: run for run in done}
        live = {number: by_trial[number] for number in survivors(done, keep)}
        if not live:
            break
    return runs


def failed_rung(runs: list[TrialRun]) -> int | None:
    """The first rung (counted from 0) at which no trial scored, if any: the sweep failed there."""
    for rung in sorted({run.rung for run in runs}):
        if all(run.best_metric is None for run in runs if run.rung == rung):
            return rung
    return None


def leaderboard(trials: list[Trial], runs: list[TrialRun]) -> list[dict[str, Any]]:
    """One row per trial, from its last rung, best first; trials without a score last."""
    last = {}
    for run in runs:
        if run.trial not in last or run.rung > last[run.trial].rung:
            last[run.trial] = run
    rows = []
    for trial in trials:
        run = last.get(trial.number)
        rows.append(
            {
                "trial": trial.number,
                "overrides": " ".join(trial.overrides),
                "best_f1": None if run is None else run.best_metric,
                "epochs": None if run is None else _reached(run),
                "stopped_early": run is not None and run.stopped_early is not None,
                "rung": None if run is None else run.rung + 1,
                "state": "not run" if run is None else run.state,
                "checkpoint": None if run is None else (run.best_checkpoint or run.last_checkpoint),
                "run_uri": None if run is None else run.run_uri,
                "flow_run": None if run is None else run.flow_run_id,
            }
        )
    return sorted(rows, key=lambda row: (row["best_f1"] is None, -(row["best_f1"] or 0.0), row["trial"]))


def _reached(run: TrialRun) -> int:
    return run.epochs if run.epochs_trained is None else run.epochs_trained


def _check_space(space: dict[str, Any], mode: str) -> None:
    if mode not in MODES:
        raise ConfigError(f"sweep mode must be one of {list(MODES)}, got {mode!r}")
    if not space:
        raise ConfigError("the search space is empty: give at least one config key and its values")
    for key, spec in space.items():
        _check_not_rung_controlled(key, f"search space key {key!r}")
        if isinstance(spec, list) and spec:
            continue
        if mode == "random" and isinstance(spec, dict) and _range(spec):
            continue
        expected = "a non-empty list" + ("" if mode == "grid" else f", or one of {list(RANGES)}: [low, high]")
        raise ConfigError(f"search space key {key!r}: expected {expected}, got {spec!r}")


def _check_not_rung_controlled(key: str, source: str) -> None:
    """`key` (or a section above it) is one the rungs set, so a value given for it would be overwritten."""
    key = key.strip()
    for rung_key in RUNG_KEYS:
        if key == rung_key or rung_key.startswith(key + "."):
            raise ConfigError(
                f"{source}: {rung_key} is set by the sweep's rungs (each trial trains to each rung's "
                "epochs); expected the epochs in `rungs`, not in the search space or the overrides"
            )


def _check_count(count: int, max_trials: int, what: str) -> None:
    if count > max_trials:
        raise ConfigError(
            f"{what}: more than max_trials={max_trials} (at most {MAX_TRIALS_LIMIT}); expected a smaller "
            "space, fewer trials, or a larger max_trials"
        )


def _dimensions(space: dict[str, Any]) -> str:
    return " x ".join(f"{len(values)} {key}" for key, values in space.items())


def _range(spec: dict) -> bool:
    if len(spec) != 1 or next(iter(spec)) not in RANGES:
        return False
    bounds = next(iter(spec.values()))
    ok = isinstance(bounds, list) and len(bounds) == 2 and all(isinstance(b, int | float) for b in bounds)
    return ok and bounds[0] <= bounds[1] and (next(iter(spec)) != "log_uniform" or bounds[0] > 0)


def _draw(spec: Any, rng: random.Random) -> Any:
    if isinstance(spec, list):
        return rng.choice(spec)
    ((kind, (low, high)),) = spec.items()
    if kind == "uniform":
        return rng.uniform(low, high)
    if kind == "log_uniform":
        return math.exp(rng.uniform(math.log(low), math.log(high)))
    return rng.randint(int(low), int(high))


def _yaml(value: Any) -> str:
    """A value as a dotlist override writes it (lists and strings as YAML/JSON flow, numbers as they are)."""
    if isinstance(value, str):
        return value
    if isinstance(value, float):
        return repr(value)
    return json.dumps(value).replace(" ", "")
