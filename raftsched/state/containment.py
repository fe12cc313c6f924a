"""Fault containment in the state machine (SPEC promise 14): the facts about each executor's results
that the leader's quarantine rule reads, the quarantine itself, and poison jobs.

The state machine keeps facts and applies decisions; the rule that turns facts into a quarantine
is the leader's (`raftsched.scheduler.watchdog`), so it can be configured per cluster without
changing what a log entry means. Poison is decided here, at the executor loss, with the limit the
leader stamped into the ExecutorDownCmd: replaying an old entry (limit 0) changes nothing.
"""

from __future__ import annotations

from raftsched.quoting import quote
from raftsched.state import lifecycle, notify
from raftsched.state.model import Model, clamp_u64
from raftsched.v1 import commands_pb2, jobs_pb2

J = jobs_pb2
C = commands_pb2
NOT_FOUND, FAILED_PRECONDITION = 5, 9

FAILURE_ENDS = frozenset({J.ATTEMPT_END_FAILED, J.ATTEMPT_END_TIMED_OUT})
SUCCESS_REFRESH_MS = 1000  # last_success_ms is rewritten at most this often while nothing fails
POISON_REASON = "poison: executors lost while running it"


def record_result(m: Model, executor_id: str, end: int, now: int) -> None:
    """Count an attempt's end against the executor that ran it: failures and timeouts in a row, and
    the time of its last success. Other ends (cancelled, fenced, lost) say nothing about it."""
    executor = m.executors.get(executor_id)
    if executor is None:
        return
    if end in FAILURE_ENDS:
        if executor.consecutive_failures == 0:
            executor.failing_since_ms = clamp_u64(now)
        executor.consecutive_failures = min(executor.consecutive_failures + 1, 2**32 - 1)
        m.put_executor(executor)
    elif end == J.ATTEMPT_END_SUCCEEDED and (
            executor.consecutive_failures or now - executor.last_success_ms >= SUCCESS_REFRESH_MS):
        executor.consecutive_failures = 0
        executor.failing_since_ms = 0
        executor.last_success_ms = clamp_u64(now)
        m.put_executor(executor)


def lost_on(job: jobs_pb2.Job) -> list[str]:
    """The distinct executors this job's attempts were lost with, in the order they were lost."""
    seen: list[str] = []
    for attempt in job.attempts:
        if attempt.end == J.ATTEMPT_END_EXECUTOR_LOST and attempt.executor not in seen:
            seen.append(attempt.executor)
    return seen


def is_poison(job: jobs_pb2.Job, poison_after: int) -> bool:
    return poison_after > 0 and len(lost_on(job)) >= poison_after


def fail_as_poison(m: Model, job: jobs_pb2.Job, now: int) -> None:
    """The job took down `poison_after` executors: FAILED, not tried on another (promise 14)."""
    reason = f"{POISON_REASON} ({', '.join(lost_on(job))})"
    lifecycle.fail(m, job, now, reason)


def on_quarantine(m: Model, cmd: commands_pb2.Command) -> commands_pb2.ApplyResult:
    q = cmd.quarantine
    executor = m.executors.get(q.executor_id)
    if executor is None:
        return _refuse(m, NOT_FOUND, f"executor {quote(q.executor_id)} not found")
    if executor.state != J.EXECUTOR_STATE_CONNECTED:
        # Down, draining or quarantined already: the rule judged facts this entry no longer matches.
        return _refuse(m, FAILED_PRECONDITION,
                       f"executor {executor.id} is {J.ExecutorState.Name(executor.state)}")
    if q.until_ms <= cmd.time_ms:
        return _refuse(m, FAILED_PRECONDITION, "quarantine: until_ms is not after the entry's time")
    executor.state = J.EXECUTOR_STATE_QUARANTINED
    executor.quarantined_until_ms = q.until_ms
    executor.quarantines = min(executor.quarantines + 1, 2**32 - 1)
    executor.state_reason = notify.text(q.reason)
    m.put_executor(executor)
    notify.emit(m, notify.EXECUTOR_QUARANTINED, cmd.time_ms, {
        "executor": executor.id, "reason": executor.state_reason, "until_ms": q.until_ms,
        "cooloff_ms": q.until_ms - cmd.time_ms, "quarantines": executor.quarantines,
        "consecutive_failures": executor.consecutive_failures})
    return C.ApplyResult()


def on_release(m: Model, cmd: commands_pb2.Command) -> commands_pb2.ApplyResult:
    r = cmd.release
    executor = m.executors.get(r.executor_id)
    if executor is None:
        return _refuse(m, NOT_FOUND, f"executor {quote(r.executor_id)} not found")
    if not executor.quarantined_until_ms:
        return _refuse(m, FAILED_PRECONDITION, f"executor {executor.id} is not quarantined")
    if executor.state == J.EXECUTOR_STATE_QUARANTINED:
        executor.state = J.EXECUTOR_STATE_CONNECTED
    # A fresh start: the failures that led here were judged already. The count of quarantines stays,
    # so a repeat offender's next cool-off is twice as long.
    executor.quarantined_until_ms = 0
    executor.consecutive_failures = 0
    executor.failing_since_ms = 0
    executor.state_reason = notify.text(r.reason)
    m.put_executor(executor)
    return C.ApplyResult()


def state_after_up(old: jobs_pb2.ExecutorInfo | None, now: int) -> int:
    """The state of an executor registering again: a drain holds while it lives, and a quarantine
    holds until its cool-off ends, across a restart too; one that was down starts afresh."""
    if old is not None and old.quarantined_until_ms > now:
        return J.EXECUTOR_STATE_QUARANTINED
    if old is not None and old.state == J.EXECUTOR_STATE_DRAINING:
        return J.EXECUTOR_STATE_DRAINING
    return J.EXECUTOR_STATE_CONNECTED


def carry_facts(old: jobs_pb2.ExecutorInfo | None, new: jobs_pb2.ExecutorInfo) -> None:
    """What a re-registration keeps: the result facts and the quarantine record."""
    if old is None:
        return
    new.consecutive_failures = old.consecutive_failures
    new.failing_since_ms = old.failing_since_ms
    new.last_success_ms = old.last_success_ms
    new.quarantines = old.quarantines
    if new.state == J.EXECUTOR_STATE_QUARANTINED:
        new.quarantined_until_ms = old.quarantined_until_ms
        new.state_reason = old.state_reason


def _refuse(m: Model, code: int, reason: str) -> commands_pb2.ApplyResult:
    m.counters.refused_commands += 1
    return C.ApplyResult(code=code, error=reason)
