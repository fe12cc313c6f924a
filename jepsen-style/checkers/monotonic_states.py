"""Promise 3: a job's state never moves backwards, and a read after a submit's ack sees the job.

Only reads that do not overlap in real time are compared: when read A completed before read B
was invoked, B's (epoch, rank) position must be at least A's (see `states`), and a terminal state
once read never changes. A read invoked after an ok submit of the job must not say NOT_FOUND.
Stale reads (`stale: true`) are checked like the others: the evidence marks them.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterator
from typing import Any

from .evidence import examples, submit_ids
from .reads import Read, reads_by_job
from .rundata import Run
from .states import NOT_FOUND, TERMINAL


def check(run: Run) -> dict[str, Any]:
    acked = {job: min(op.end for op in ops) for job, ops in submit_ids(run.ops).items()}
    by_job = reads_by_job(run.ops)
    problems: list[dict[str, Any]] = []
    for job, reads in sorted(by_job.items()):
        problems.extend(_unknown_states(reads))
        known = [r for r in reads if r.pos is not None]
        problems.extend(_backwards(job, known))
        problems.extend(_not_found_after_ack(job, known, acked.get(job)))
    kinds = [p["problem"] for p in problems]
    return {
        "valid": not problems,
        "jobs": len(by_job),
        "reads": sum(len(r) for r in by_job.values()),
        "backwards": kinds.count("backwards"),
        "terminal_changed": kinds.count("terminal_changed"),
        "not_found_after_submit": kinds.count("not_found_after_submit"),
        "unknown_state": kinds.count("unknown_state"),
        "involving_stale_reads": sum(p.get("stale", False) for p in problems),
        "examples": examples(problems),
    }


def _unknown_states(reads: list[Read]) -> Iterator[dict[str, Any]]:
    for r in reads:
        if r.pos is None:
            yield {"problem": "unknown_state", "id": r.job, "read": r.brief(), "stale": r.stale}


def _backwards(job: str, reads: list[Read]) -> Iterator[dict[str, Any]]:
    """Compare each read with the highest read that completed before it was invoked."""
    by_completion = sorted(reads, key=lambda r: r.op.end)
    ends = [r.op.end for r in by_completion]
    highest: list[Read] = []
    for r in by_completion:
        best = highest[-1] if highest else r
        highest.append(r if r.pos > best.pos else best)  # type: ignore[operator]
    for later in reads:
        before = bisect.bisect_left(ends, later.op.invoke_time)
        if before == 0:
            continue
        earlier = highest[before - 1]
        problem = _compare(earlier, later)
        if problem:
            stale = earlier.stale or later.stale
            yield {"problem": problem, "id": job, "earlier": earlier.brief(), "later": later.brief(), "stale": stale}


def _compare(earlier: Read, later: Read) -> str | None:
    if later.pos < earlier.pos:  # type: ignore[operator]
        return "backwards"
    if earlier.state in TERMINAL and later.state != earlier.state:
        return "terminal_changed"
    return None


def _not_found_after_ack(job: str, reads: list[Read], acked_at: float | None) -> Iterator[dict[str, Any]]:
    if acked_at is None:
        return
    for r in reads:
        if r.state == NOT_FOUND and r.op.invoke_time > acked_at:
            yield {"problem": "not_found_after_submit", "id": job, "read": r.brief(), "acked_at": int(acked_at),
                   "stale": r.stale}
