"""Promise 9: two attempts of one job never run at the same time.

Each (job, attempt) runs over [first, last] of its ledger lines (task starts and ~100 ms
heartbeats; with start lines only, the check is weak and says so). Two different attempts of one
job whose intervals intersect are a violation, unless the nemesis paused the executor holding the
older attempt while it ran and before the newer began: those are reported as excused.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from itertools import combinations
from typing import Any

from .evidence import examples
from .history import NemesisWindow
from .ledger import Interval, intervals
from .rundata import Run

PAUSES = ("pause", "pause-executor")


def check(run: Run) -> dict[str, Any]:
    by_job: dict[str, list[Interval]] = defaultdict(list)
    for interval in intervals(run.ledger).values():
        by_job[interval.job].append(interval)
    pauses = [w for w in run.nemesis if w.f in PAUSES]
    violations: list[dict[str, Any]] = []
    excused: list[dict[str, Any]] = []
    for job, attempts in sorted(by_job.items()):
        for older, newer in _overlapping(attempts):
            window = _excuse(run, older, newer, pauses)
            entry = _describe(job, older, newer, window)
            (excused if window is not None else violations).append(entry)
    lines = len(run.ledger)
    out: dict[str, Any] = {
        "valid": not violations,
        "jobs": len(by_job),
        "attempts": sum(len(a) for a in by_job.values()),
        "ledger_lines": lines,
        "malformed_lines": run.ledger_malformed,
        "heartbeats_seen": run.ledger_heartbeats,
        "clock_aligned": run.ledger_offset_ns is not None,
        "overlaps": len(violations),
        "excused": len(excused),
        "examples": examples(violations),
        "excused_examples": examples(excused, 5),
    }
    if lines and not run.ledger_heartbeats:
        out["note"] = "the ledger has start lines only, so overlaps cannot be seen (heartbeat lines would show them)"
    return out


def _overlapping(attempts: list[Interval]) -> Iterator[tuple[Interval, Interval]]:
    for a, b in combinations(sorted(attempts, key=lambda i: i.attempt), 2):
        if a.attempt != b.attempt and a.first <= b.last and b.first <= a.last:
            yield a, b


def _excuse(run: Run, older: Interval, newer: Interval, pauses: list[NemesisWindow]) -> NemesisWindow | None:
    """A pause of the older attempt's executor that began while it ran and before the newer started."""
    start, began = run.ledger_to_history(older.first), run.ledger_to_history(newer.first)
    if start is None or began is None:
        return None
    for w in pauses:
        if older.executor in w.targets and w.end >= start and w.start <= began:
            return w
    return None


def _describe(job: str, older: Interval, newer: Interval, window: NemesisWindow | None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": job,
        "older": {"attempt": older.attempt, "executor": older.executor, "first_ns": older.first, "last_ns": older.last},
        "newer": {"attempt": newer.attempt, "executor": newer.executor, "first_ns": newer.first, "last_ns": newer.last},
        "overlap_ms": round((min(older.last, newer.last) - max(older.first, newer.first)) / 1e6, 3),
    }
    if window is not None:
        out["excused_by"] = {"f": window.f, "index": window.index, "targets": list(window.targets)}
    return out
