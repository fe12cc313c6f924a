"""After healing, every job has reached a terminal state (checked on the final state)."""

from __future__ import annotations

from collections import Counter
from typing import Any

from .evidence import examples
from .rundata import Run


def check(run: Run) -> dict[str, Any]:
    jobs = list(run.jobs.values())
    stuck = [job for job in jobs if not job.terminal]
    return {
        "valid": not stuck,
        "jobs": len(jobs),
        "by_state": dict(sorted(Counter(job.state for job in jobs).items())),
        "not_terminal": len(stuck),
        "examples": examples({"id": j.id, "state": j.state, "attempt": j.last_attempt} for j in stuck),
    }
