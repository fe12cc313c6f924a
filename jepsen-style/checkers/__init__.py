"""The chaos harness's checkers (SPEC §6, §8): one module per promise, run together by `check_all`.

Every checker takes a `Run` and returns a JSON-ready dict with "valid" and small evidence: counts
plus at most ten examples naming history op indexes, job ids or log indexes.
"""

from __future__ import annotations

import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from . import (
    elections,
    fencing,
    figures,
    idempotency,
    linearizability,
    liveness,
    load,
    log_prefix,
    lost_writes,
    monotonic_states,
    no_overlap,
    schedules,
)
from .rundata import Run

Checker = Callable[[Run], dict[str, Any]]

CHECKERS: dict[str, Checker] = {
    "lost_writes": lost_writes.check,
    "idempotency": idempotency.check,
    "monotonic_states": monotonic_states.check,
    "linearizability": linearizability.check,
    "fencing": fencing.check,
    "no_overlap": no_overlap.check,
    "log_prefix": log_prefix.check,
    "elections": elections.check,
    "schedules": schedules.check,
    "liveness": liveness.check,
    "figures": figures.check,
    "load": load.check,
}

__all__ = ["CHECKERS", "Run", "check_all", "check_run"]


def check_all(run_dir: Path) -> dict[str, Any]:
    """Run every checker on the files in `run_dir`; {"valid": all valid, "checkers": {name: result}}."""
    return check_run(Run.from_dir(Path(run_dir)))


def check_run(run: Run, checkers: dict[str, Checker] | None = None) -> dict[str, Any]:
    results = {name: _guarded(checker, run) for name, checker in (checkers or CHECKERS).items()}
    return {"valid": all(r.get("valid") is True for r in results.values()), "checkers": results}


def _guarded(checker: Checker, run: Run) -> dict[str, Any]:
    """A checker that crashes is invalid: a check that could not run proves nothing."""
    try:
        return checker(run)
    except Exception as err:  # any crash becomes this checker's verdict, never the run's end
        frames = traceback.extract_tb(err.__traceback__)[-3:]
        where = [f"{Path(f.filename).name}:{f.lineno} in {f.name}" for f in frames]
        return {"valid": False, "error": f"{type(err).__name__}: {err}", "where": where}
