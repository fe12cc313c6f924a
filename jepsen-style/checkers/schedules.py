"""Promise 11: a schedule fires each scheduled time at most once, across any leader change; with
catch-up `all` exactly once within the catch-up window; every time not fired is recorded with a
reason.

Reads final_state.json: `schedules` (Schedule JSON by name), `schedule_pauses` (name -> wall ms
of the pause's first invoke and of its ok), `collected_ms` (wall ms just before the schedules
were read) and the jobs, which carry scheduleId and scheduledTime. The scheduled times come from
the spec itself (raftsched.state.firetimes), after the schedule's createdMs. Per schedule:

- duplicates: two jobs for one scheduled time (manual triggers aside, they have their own key);
- every scheduled time up to the record's watermark (the newest time fired or skipped) has a job
  or a skip record; the record keeps only the newest 100 skips, so times older than the oldest
  listed skip without a job are matched by count against the unlisted skips
  (decided = fired + skipped_count), never reported one by one as gaps;
- a time due before the pause (and more than TAIL_GRACE_MS before the final read) is decided;
- no job for a time after the pause was acknowledged, no job for an unscheduled or undecided
  time, no time both fired and skipped, fired_count matches the jobs found;
- catch-up `all`: no time skipped as missed, nor as outside window while it was inside the
  window and the cap (catchup_max) could not have applied.

Figures, per schedule and in total: due (creation to pause), fired, skipped by reason, and the
delay from each scheduled time to its job's creation (submittedMs - scheduledTime).
"""

from __future__ import annotations

import statistics
from collections import Counter, defaultdict
from dataclasses import dataclass
from typing import Any

from google.protobuf.json_format import ParseDict

from raftsched.state import firetimes
from raftsched.v1 import scheduler_pb2

from .evidence import examples
from .rundata import Run
from .states import pick

TAIL_GRACE_MS = 3000  # a time due this close to the final read may still be undecided
LATE_MS = firetimes.ON_TIME_GRACE_MS  # a job created later than this after its time was caught up
ENUMERATE_LIMIT = 1_000_000
MANUAL = "/manual/"  # in a manual trigger's idempotency key
REASONS = (firetimes.MISSED, firetimes.OVERLAP, firetimes.PAUSED, firetimes.OUTSIDE_WINDOW)


@dataclass(frozen=True)
class ScheduledJob:
    id: str
    schedule: str
    time: int
    submitted_ms: int
    manual: bool
    state: str


def check(run: Run) -> dict[str, Any]:
    final = run.final_state
    schedules = final.get("schedules") or {}
    by_schedule = _scheduled_jobs(final.get("jobs") or {})
    if not schedules and not by_schedule:
        return {"valid": True, "schedules": 0, "note": "no schedules in this run"}
    pauses = final.get("schedule_pauses") or {}
    collected = _int(final.get("collected_ms"))
    ahead_ms = clock_ahead_ms(run.events)
    results = {name: check_schedule(name, record, by_schedule.get(name, []), pauses.get(name), collected,
                                    ahead_ms=ahead_ms)
               for name, record in sorted(schedules.items())}
    orphans = {name: [j.id for j in jobs] for name, jobs in by_schedule.items() if name not in schedules}
    violations = [dict(v, schedule=name) for name, r in results.items() for v in r.pop("violations")]
    violations += [{"kind": "jobs of a schedule missing from the final state", "schedule": name,
                    "jobs": len(ids), "ids": ids[:5]} for name, ids in sorted(orphans.items())]
    kinds = Counter(v["kind"] for v in violations)
    return {
        "valid": not violations,
        "schedules": len(schedules),
        "clock_ahead_ms": ahead_ms,
        "violations": dict(sorted(kinds.items())),
        "examples": examples(violations),
        "totals": _totals(results),
        "per_schedule": results,
    }


def clock_ahead_ms(events: list[dict[str, Any]]) -> int:
    """How far ahead of the truth the clock nemesis ever put a process's wall clock (ms), from the
    offsets its start and end values record (0 without clock faults). A leader whose clock is
    ahead decides times early: by its own clock they are due, by the harness's not yet."""
    ahead = 0.0
    for ev in events:
        value = ev.get("value")
        clock = ev.get("process") == "nemesis" and str(ev.get("f", "")).startswith("clock")
        if not clock or not isinstance(value, dict):
            continue
        offsets = [*(value.get("offsets_s") or {}).values(), value.get("reached_s") or 0]
        ahead = max([ahead, *(float(o) for o in offsets if isinstance(o, int | float))])
    return int(ahead * 1000)


def check_schedule(name: str, record: dict[str, Any], jobs: list[ScheduledJob], pause: dict[str, Any] | None,
                   collected_ms: int | None, ahead_ms: int = 0) -> dict[str, Any]:
    """One schedule's figures and violations (each a dict with "kind"). Times are judged by the
    leader's stamps where they exist (a job's submittedMs: never before its time was due), and
    the pause, read on the harness's clock, by it plus `ahead_ms` (clock_ahead_ms)."""
    spec = ParseDict(record.get("spec") or {}, scheduler_pb2.ScheduleSpec(), ignore_unknown_fields=True)
    created = _int(pick(record, "createdMs", "created_ms")) or 0
    listed = [(_int(pick(s, "scheduledTime", "scheduled_time")) or 0, str(s.get("reason", "")))
              for s in record.get("skipped") or []]
    skipped_count = _int(pick(record, "skippedCount", "skipped_count")) or 0
    fired_count = _int(pick(record, "firedCount", "fired_count")) or 0
    last_fired = _int(pick(record, "lastFiredTime", "last_fired_time")) or 0
    watermark = max(last_fired, listed[-1][0] if listed else 0, created)
    pause_invoke = _int((pause or {}).get("invoke_ms"))
    pause_ok = _int((pause or {}).get("ok_ms"))
    end = pause_invoke if pause_invoke is not None else collected_ms
    horizon = max(watermark, end or 0, collected_ms or 0)
    times = firetimes.times_after(spec, created, horizon, ENUMERATE_LIMIT)
    scheduled = set(times)
    decided = [t for t in times if t <= watermark]
    due = [t for t in times if end is None or firetimes.due(spec, t) <= end]
    due_set = set(due)

    v: list[dict[str, Any]] = []
    fires = [j for j in jobs if not j.manual]
    by_time: dict[int, list[ScheduledJob]] = defaultdict(list)
    for j in fires:
        by_time[j.time].append(j)
    for t, js in sorted(by_time.items()):
        if len(js) > 1:
            v.append({"kind": "duplicate fire", "scheduled_time": t, "jobs": sorted(j.id for j in js)})
        if t not in scheduled or t > watermark:
            v.append({"kind": "job for an unscheduled or undecided time", "scheduled_time": t,
                      "jobs": sorted(j.id for j in js), "watermark": watermark})
        if pause_ok is not None and firetimes.due(spec, t) > pause_ok + ahead_ms:
            v.append({"kind": "fired after the pause was acknowledged", "scheduled_time": t,
                      "jobs": sorted(j.id for j in js), "pause_ok_ms": pause_ok, "clock_ahead_ms": ahead_ms})
        early = [j.id for j in js if j.submitted_ms and j.submitted_ms < firetimes.due(spec, t)]
        if early:
            v.append({"kind": "fired before its time by the leader's own clock", "scheduled_time": t,
                      "jobs": sorted(early)})
    listed_times = Counter(t for t, _ in listed)
    for t, n in sorted(listed_times.items()):
        if t in by_time:
            v.append({"kind": "time both fired and skipped", "scheduled_time": t, "jobs": [j.id for j in by_time[t]],
                      "reasons": [r for lt, r in listed if lt == t]})
        if n > 1:
            v.append({"kind": "time skipped twice", "scheduled_time": t})
        if t not in scheduled:
            v.append({"kind": "skip of an unscheduled time", "scheduled_time": t})
    for t, reason in listed:
        if reason not in REASONS:
            v.append({"kind": "skip without a known reason", "scheduled_time": t, "reason": reason})
    if len(jobs) != fired_count:
        v.append({"kind": "fired_count disagrees with the jobs", "fired_count": fired_count, "jobs": len(jobs)})
    # buffer-one: a time decided while the previous job still runs is recorded as fired
    # (lastFiredTime) with `buffered` set; its job is created only when that job ends.
    buffered = bool(record.get("buffered")) and last_fired not in by_time
    v += _gaps([t for t in decided if not (buffered and t == last_fired)], set(by_time), listed, skipped_count)
    if end is not None:
        cutoff = min(end, (collected_ms if collected_ms is not None else end + TAIL_GRACE_MS) - TAIL_GRACE_MS)
        undecided = [t for t in times if t > watermark and firetimes.due(spec, t) <= cutoff]
        if undecided:
            v.append({"kind": "unexplained gap", "why": "due before the pause, never fired nor skipped",
                      "count": len(undecided), "times": undecided[:10], "watermark": watermark})
    if spec.catchup == scheduler_pb2.CATCHUP_POLICY_ALL:
        v += _catchup_all(spec, listed, len(decided), collected_ms)

    delays = sorted(((j.submitted_ms - j.time, j) for j in fires if j.submitted_ms), key=lambda d: d[0])
    reasons = Counter(r for _, r in listed)
    unlisted = skipped_count - len(listed)
    out: dict[str, Any] = {
        "every_ms": spec.every_ms or None,
        "cron": spec.cron or None,
        "catchup": scheduler_pb2.CatchupPolicy.Name(spec.catchup).removeprefix("CATCHUP_POLICY_").lower(),
        "overlap": scheduler_pb2.OverlapPolicy.Name(spec.overlap).removeprefix("OVERLAP_POLICY_").lower(),
        "paused": bool(record.get("paused")),
        "due": len(due),
        "fired_before_pause": sum(1 for t in by_time if t in due_set),
        "skipped_before_pause": sum(1 for t, _ in listed if t in due_set),
        "decided": len(decided),
        "fired": len(by_time),
        "fired_count": fired_count,
        "manual_fires": len(jobs) - len(fires),
        "skipped_count": skipped_count,
        "skipped_by_reason": dict(sorted(reasons.items())) | ({"unlisted (record keeps 100)": unlisted}
                                                             if unlisted > 0 else {}),
        "late_fires": sum(1 for d, _ in delays if d > LATE_MS),
        "median_delay_ms": statistics.median(d for d, _ in delays) if delays else None,
        "max_delay_ms": delays[-1][0] if delays else None,
        "max_delay_job": ({"id": delays[-1][1].id, "scheduled_time": delays[-1][1].time} if delays else None),
        "violations": v,
    }
    return out


def _gaps(decided: list[int], fired: set[int], listed: list[tuple[int, str]], skipped_count: int,
          ) -> list[dict[str, Any]]:
    """Decided times with neither a job nor a listed skip. The record lists the newest skips
    only, so such times older than the oldest listed skip are matched by count with the unlisted
    ones; newer ones, or more of them than unlisted skips, are gaps.

    A buffer-one time given up for a newer one is recorded out of time order, just before the
    newest record, and may be far older than the records around it (a time buffered behind a job
    that ran long). It is listed, but it does not bound the unlisted ones: `oldest` is taken over
    the records that are in time order."""
    listed_set = {t for t, _ in listed}
    uncovered = [t for t in decided if t not in fired and t not in listed_set]
    unlisted = max(0, skipped_count - len(listed))
    in_order = [t for i, (t, _) in enumerate(listed) if i == 0 or t > max(u for u, _ in listed[:i])]
    oldest = min(in_order, default=None)
    older = [t for t in uncovered if unlisted and oldest is not None and t < oldest]
    newer = uncovered[len(older):]  # uncovered is in time order, older is its prefix
    out: list[dict[str, Any]] = []
    if newer:
        out.append({"kind": "unexplained gap", "why": "decided time with no job and no skip record",
                    "count": len(newer), "times": newer[:10]})
    if len(older) > unlisted:
        out.append({"kind": "unexplained gap", "why": "more old times without a job than unlisted skips",
                    "count": len(older) - unlisted, "unlisted_skips": unlisted, "times": older[:10]})
    elif len(older) < unlisted:
        out.append({"kind": "counts disagree", "why": "skipped_count exceeds the times neither fired nor listed",
                    "unlisted_skips": unlisted, "uncovered_old_times": len(older)})
    return out


def _catchup_all(spec: scheduler_pb2.ScheduleSpec, listed: list[tuple[int, str]], decided: int,
                 collected_ms: int | None) -> list[dict[str, Any]]:
    """Catch-up `all` fires every late time inside the window: never `missed`; `outside window`
    only for a time older than the window (at the final read, which is after any decision) or
    when more times were due than catchup_max."""
    out: list[dict[str, Any]] = []
    capped = decided > firetimes.catchup_max(spec)
    for t, reason in listed:
        if reason == firetimes.MISSED:
            out.append({"kind": "catch-up all skipped a time as missed", "scheduled_time": t})
        elif (reason == firetimes.OUTSIDE_WINDOW and not capped and collected_ms is not None
              and collected_ms - t <= firetimes.window_ms(spec)):
            out.append({"kind": "catch-up all skipped a time inside the window", "scheduled_time": t,
                        "window_ms": firetimes.window_ms(spec)})
    return out


def _scheduled_jobs(raw_jobs: dict[str, Any]) -> dict[str, list[ScheduledJob]]:
    out: dict[str, list[ScheduledJob]] = defaultdict(list)
    for job_id, job in raw_jobs.items():
        if not isinstance(job, dict):
            continue
        schedule = pick(job, "scheduleId", "schedule_id")
        if not schedule:
            continue
        key = str(pick(job.get("spec") or {}, "idempotencyKey", "idempotency_key", ""))
        out[str(schedule)].append(ScheduledJob(
            id=str(job_id), schedule=str(schedule),
            time=_int(pick(job, "scheduledTime", "scheduled_time")) or 0,
            submitted_ms=_int(pick(job, "submittedMs", "submitted_ms")) or 0,
            manual=MANUAL in key, state=str(job.get("state", "")).removeprefix("JOB_STATE_")))
    return out


def _totals(results: dict[str, dict[str, Any]]) -> dict[str, Any]:
    reasons: Counter[str] = Counter()
    for r in results.values():
        reasons.update(r["skipped_by_reason"])
    delays = [r["max_delay_ms"] for r in results.values() if r["max_delay_ms"] is not None]
    return {
        "due": sum(r["due"] for r in results.values()),
        "decided": sum(r["decided"] for r in results.values()),
        "fired": sum(r["fired"] for r in results.values()),
        "skipped": sum(r["skipped_count"] for r in results.values()),
        "skipped_by_reason": dict(sorted(reasons.items())),
        "late_fires": sum(r["late_fires"] for r in results.values()),
        "max_delay_ms": max(delays, default=None),
    }


def _int(value: Any) -> int | None:
    """A protobuf-JSON integer (uint64 comes as a string); None when absent or not a number."""
    if value is None or isinstance(value, bool):
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        return None
