"""A hyperparameter sweep's plan: trials from a search space, and successive halving over rungs of epochs.

A search space maps config keys to values: a list (each value, in a grid; one drawn at random otherwise) or,
for random search, a range: ``{"uniform": [low, high]}``, ``{"log_uniform": [low, high]}`` or
``{"int": [low, high]}`` (both ends included). Each trial is a list of ``key=value`` overrides.

Successive halving (Jamieson & Talwalkar, 2016) with exact resume: every trial trains to the first rung's
epochs; the best ``keep`` fraction resumes from its own last checkpoint up to the next rung's, and so on, so
no trial trains an epoch twice. Ranking is by the validation gesture F1 each trial's run reports as its best.
"""

from __future__ import annotations

import itertools
import json
import math
import random
from dataclasses import dataclass
from typing import Any

from handgesture.errors import ConfigError

MODES = ("grid", "random")
RANGES = ("uniform", "log_uniform", "int")


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


def plan_trials(space: dict[str, Any], mode: str, count: int, seed: int) -> list[Trial]:
    """The trials of `space`: its whole grid, or `count` random points drawn with `seed`."""
    _check_space(space, mode)
    if mode == "grid":
        keys = list(space)
        points = [dict(zip(keys, values, strict=True)) for values in itertools.product(*space.values())]
    else:
        if count < 1:
            raise ConfigError(f"a random sweep needs trials >= 1, got {count}")
        rng = random.Random(seed)
        points = [{key: _draw(spec, rng) for key, spec in space.items()} for _ in range(count)]
    return [Trial(i, tuple(f"{k}={_yaml(v)}" for k, v in p.items())) for i, p in enumerate(points)]


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
                "epochs": None if run is None else run.epochs,
                "rung": None if run is None else run.rung + 1,
                "state": "not run" if run is None else run.state,
                "checkpoint": None if run is None else (run.best_checkpoint or run.last_checkpoint),
                "flow_run": None if run is None else run.flow_run_id,
            }
        )
    return sorted(rows, key=lambda row: (row["best_f1"] is None, -(row["best_f1"] or 0.0), row["trial"]))


def _check_space(space: dict[str, Any], mode: str) -> None:
    if mode not in MODES:
        raise ConfigError(f"sweep mode must be one of {list(MODES)}, got {mode!r}")
    if not space:
        raise ConfigError("the search space is empty: give at least one config key and its values")
    for key, spec in space.items():
        if isinstance(spec, list) and spec:
            continue
        if mode == "random" and isinstance(spec, dict) and _range(spec):
            continue
        expected = "a non-empty list" + ("" if mode == "grid" else f", or one of {list(RANGES)}: [low, high]")
        raise ConfigError(f"search space key {key!r}: expected {expected}, got {spec!r}")


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
