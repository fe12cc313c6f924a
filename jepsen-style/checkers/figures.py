"""Measurements, never a verdict: failover unavailability and executor-loss requeue delays.

- failover: for each fault of the leader (a nemesis f naming "leader", or a kill, pause or
  partition whose targets include the node the event names as leader), the time from the fault's
  start to the completion of the first ok submit invoked after it (SPEC §6 promise 6).
- requeue: for each kill of an executor, for each attempt that ran there and was started before
  the kill and still running then, the time from the kill to the ledger's first start of a later attempt of that job
  (promise 5). Needs run.json's monotonic origin to put ledger times on the history's clock.
"""

from __future__ import annotations

import bisect
from typing import Any

from .evidence import examples, stats_ms
from .history import NemesisWindow, Op
from .ledger import Interval, intervals
from .rundata import Run

LEADER_FAULTS = ("kill", "pause", "partition")
EXECUTOR_KILLS = ("kill-executor",)
HEARTBEAT_SLACK_NS = 500_000_000  # heartbeats come every ~100 ms
REPORTED_RESULTS = ("SUCCEEDED", "FAILED", "CANCELLED")


def check(run: Run) -> dict[str, Any]:
    failovers = failover_windows(run.nemesis, run.ops)
    out: dict[str, Any] = {
        "valid": True,
        "failover": stats_ms([w for _, w in failovers if w is not None]),
        "failover_never_recovered": sum(w is None for _, w in failovers),
        "failover_events": examples(
            {"index": ev.index, "f": ev.f, "ms": None if w is None else round(w / 1e6, 3)} for ev, w in failovers
        ),
    }
    out.update(_requeue(run))
    return out


def is_leader_fault(w: NemesisWindow) -> bool:
    if "leader" in w.f:
        return "executor" not in w.f
    return w.leader is not None and w.f.startswith(LEADER_FAULTS) and w.leader in w.targets


def failover_windows(nemesis: list[NemesisWindow], ops: list[Op]) -> list[tuple[NemesisWindow, int | None]]:
    submits = sorted((op for op in ops if op.f == "submit" and op.ok), key=lambda op: op.invoke_time)
    invokes = [op.invoke_time for op in submits]
    out: list[tuple[NemesisWindow, int | None]] = []
    for w in nemesis:
        if not is_leader_fault(w):
            continue
        after = submits[bisect.bisect_left(invokes, w.start):]
        done = min((op.complete_time for op in after if op.complete_time is not None), default=None)
        out.append((w, None if done is None else done - w.start))
    return out


def _requeue(run: Run) -> dict[str, Any]:
    kills = [w for w in run.nemesis if w.f in EXECUTOR_KILLS]
    if not kills:
        return {"requeue": stats_ms([]), "requeue_not_measured": 0}
    if run.ledger_offset_ns is None:
        return {"requeue": stats_ms([]), "requeue_note": "run.json gives no monotonic origin for ledger times"}
    spans = intervals(run.ledger)
    delays: list[int] = []
    missing = 0
    for w in kills:
        for span in _lost_attempts(run, w, spans):
            later = [s.first for s in spans.values() if s.job == span.job and s.attempt > span.attempt]
            starts = [t for t in (run.ledger_to_history(ns) for ns in later) if t is not None and t >= w.start]
            if starts:
                delays.append(min(starts) - w.start)
            else:
                missing += 1
    return {"requeue": stats_ms(delays), "requeue_not_measured": missing}


def _lost_attempts(run: Run, w: NemesisWindow, spans: dict[tuple[str, int], Interval]) -> list[Interval]:
    """Each job's latest attempt started before the kill, if it ran on a killed executor and still ran then."""
    latest: dict[str, Interval] = {}
    for span in spans.values():
        start = run.ledger_to_history(span.first)
        if start is None or start > w.start:
            continue
        if span.job not in latest or span.attempt > latest[span.job].attempt:
            latest[span.job] = span
    return [s for s in latest.values() if s.executor in w.targets and _running_at(run, s, w.start)]


def _running_at(run: Run, span: Interval, when: int) -> bool:
    """Whether the attempt may still have been running: no result recorded, heartbeats until then."""
    if run.ledger_heartbeats:
        last = run.ledger_to_history(span.last)
        if last is not None and last < when - HEARTBEAT_SLACK_NS:
            return False
    try:
        job = run.jobs.get(span.job)
    except (OSError, ValueError):
        return True
    ends = {a.number: a.end for a in job.attempts} if job is not None else {}
    return ends.get(span.attempt) not in REPORTED_RESULTS
