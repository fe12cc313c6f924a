"""After healing, every job has reached a terminal state (checked on the final state), and some
succeeded: a run whose jobs all ended otherwise proves nothing about the scheduler (a broken task
script once made every job FAIL in a run that every other checker passed)."""

from __future__ import annotations

from collections import Counter
from typing import Any

from .evidence import examples
from .rundata import Run

MIN_JOBS_FOR_SUCCESS = 20  # below this, a run may end with every job cancelled by chance


def check(run: Run) -> dict[str, Any]:
    jobs = list(run.jobs.values())
    stuck = [job for job in jobs if not job.terminal]
    none_succeeded = len(jobs) >= MIN_JOBS_FOR_SUCCESS and not any(job.state == "SUCCEEDED" for job in jobs)
    return {
        "valid": not stuck and not none_succeeded,
        "none_succeeded": none_succeeded,
        "jobs": len(jobs),
        "by_state": dict(sorted(Counter(job.state for job in jobs).items())),
        "not_terminal": len(stuck),
        "examples": examples({"id": j.id, "state": j.state, "attempt": j.last_attempt} for j in stuck),
    }
