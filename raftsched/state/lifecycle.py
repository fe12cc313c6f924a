"""Job lifecycle rules shared by several commands: retry with backoff, success, cancel, cascades.

    PENDING -> QUEUED -> ASSIGNED -> RUNNING -> SUCCEEDED | FAILED | CANCELLED
       |          ^                     |
       |          +---- retry ----------+   (after backoff; EXECUTOR_LOST retries at once)
       +-> SKIPPED (a dependency did not succeed)

A terminal state is final (SPEC §6.3); every function here checks before it moves a job.
"""

from __future__ import annotations

import math

from raftsched.jobstates import TERMINAL
from raftsched.state import notify
from raftsched.state.model import DEFAULT_MAX_ATTEMPTS, Model, clamp_u64, current_attempt
from raftsched.v1 import jobs_pb2

J = jobs_pb2
DEFAULT_BACKOFF_INITIAL_MS = 1000
DEFAULT_BACKOFF_MAX_MS = 30000
DEFAULT_BACKOFF_MULTIPLIER = 2.0
ERROR_MAX_CHARS = 4096
OUTPUT_TAIL_MAX_BYTES = 4096


def backoff_ms(backoff: jobs_pb2.RetryBackoff, failures: int) -> int:
    """Delay before retry after `failures` failed attempts: initial * multiplier^(failures-1), capped.

    Committed entries are not trusted to be validated, so a NaN, infinite or shrinking multiplier
    falls back to the default, and float overflow means "the cap".
    """
    initial = backoff.initial_ms or DEFAULT_BACKOFF_INITIAL_MS
    cap = backoff.max_ms or DEFAULT_BACKOFF_MAX_MS
    multiplier = backoff.multiplier or DEFAULT_BACKOFF_MULTIPLIER
    if not math.isfinite(multiplier) or multiplier < 1.0:
        multiplier = DEFAULT_BACKOFF_MULTIPLIER
    try:
        delay = initial * multiplier ** max(0, failures - 1)
    except OverflowError:
        return cap
    return cap if not math.isfinite(delay) or delay >= cap else int(delay)


def max_attempts(job: jobs_pb2.Job) -> int:
    return job.spec.max_attempts or DEFAULT_MAX_ATTEMPTS


# Built once: protobuf's Enum.values() builds a list on every call, and apply names states often.
_END_NAMES = {value: J.AttemptEnd.Name(value).removeprefix("ATTEMPT_END_") for value in J.AttemptEnd.values()}
_STATE_NAMES = {value: J.JobState.Name(value).removeprefix("JOB_STATE_") for value in J.JobState.values()}


def end_name(end: int) -> str:
    return _END_NAMES.get(end) or str(end)


def state_name(state: int) -> str:
    return _STATE_NAMES.get(state) or str(state)


def record_outcome(attempt: jobs_pb2.Attempt, exit_code: int, error: str, output_tail: bytes) -> None:
    """Keep what the executor reported, bounded (the tail of output, the head of the error)."""
    attempt.exit_code = exit_code
    attempt.error = error[:ERROR_MAX_CHARS]
    attempt.output_tail = output_tail[-OUTPUT_TAIL_MAX_BYTES:]


def retry_or_fail(m: Model, job: jobs_pb2.Job, end: int, now: int, *, backoff: bool = True) -> None:
    """After the current attempt ended without success: queue the next attempt or give up.

    Every attempt counts against max_attempts, an executor loss too (like Nomad's reschedule
    attempts): a task that keeps killing its executor must not be retried forever. A loss skips
    the backoff, since the task did not fail on its own (SPEC §6.5: re-queued within one round).
    """
    m.touch(job)
    attempt = job.attempts[-1]
    detail = f"attempt {attempt.number} {end_name(end)}" + (f": {attempt.error}" if attempt.error else "")
    if attempt.number < max_attempts(job):
        delay = backoff_ms(job.spec.backoff, attempt.number) if backoff else 0
        job.not_before_ms = clamp_u64(now + delay)
        retry = f"retry {attempt.number + 1} of {max_attempts(job)}"
        m.set_state(job, J.JOB_STATE_QUEUED, now, f"{detail}; {retry}")
        return
    fail(m, job, now, f"{detail}; no attempts left (max {max_attempts(job)})")


def fail(m: Model, job: jobs_pb2.Job, now: int, reason: str) -> None:
    """The job gives up: FAILED, a job.failed event, and what waits on it SKIPPED."""
    m.set_state(job, J.JOB_STATE_FAILED, now, reason)
    notify.emit(m, notify.JOB_FAILED, now, failed_event(job))
    skip_dependents(m, job, now)


def failed_event(job: jobs_pb2.Job) -> dict[str, object]:
    """The data of a job.failed event: the job and its last attempt."""
    attempt = job.attempts[-1]
    return {"job_id": job.id, "name": notify.text(job.spec.name), "reason": notify.text(job.state_reason),
            "attempts": attempt.number, "executor": attempt.executor, "end": end_name(attempt.end),
            "exit_code": attempt.exit_code, "error": notify.text(attempt.error),
            "schedule": job.schedule_id, "scheduled_time": job.scheduled_time}


def attempt_event(job: jobs_pb2.Job, attempt: jobs_pb2.Attempt) -> dict[str, object]:
    """The data of a job.attempt_timed_out or job.attempt_fenced event."""
    return {"job_id": job.id, "name": notify.text(job.spec.name), "attempt": attempt.number,
            "executor": attempt.executor, "error": notify.text(attempt.error),
            "last_attempt": attempt.number >= max_attempts(job)}


def succeed(m: Model, job: jobs_pb2.Job, now: int) -> None:
    m.set_state(job, J.JOB_STATE_SUCCEEDED, now, "")
    for dependent in _dependents(m, job):
        if dependent.state == J.JOB_STATE_PENDING and all_deps_succeeded(m, dependent):
            m.touch(dependent)
            dependent.not_before_ms = 0
            m.set_state(dependent, J.JOB_STATE_QUEUED, now, "dependencies succeeded")


def _dependents(m: Model, job: jobs_pb2.Job) -> list[jobs_pb2.Job]:
    """The live jobs depending on `job`, in submit order (a copy: moving them changes the index).
    Invariant: a job is not deleted while a live job depends on it, and the reverse."""
    out = []
    for dep_id in list(m.dependents.get(job.id, ())):
        dependent = m.job(dep_id)
        assert dependent is not None, f"{dep_id} depends on {job.id} but is gone"
        out.append(dependent)
    return out


def all_deps_succeeded(m: Model, job: jobs_pb2.Job) -> bool:
    return all(_state_of(m, dep) == J.JOB_STATE_SUCCEEDED for dep in job.spec.depends_on)


def _state_of(m: Model, job_id: str) -> int:
    dep = m.job(job_id)
    assert dep is not None, f"{job_id} is gone while a live job depends on it"
    return dep.state


def cancel(m: Model, job: jobs_pb2.Job, now: int, reason: str) -> None:
    attempt = current_attempt(job)
    if attempt is not None:
        m.end_attempt(job, attempt, J.ATTEMPT_END_CANCELLED, now)
    m.set_state(job, J.JOB_STATE_CANCELLED, now, reason or "cancelled")
    skip_dependents(m, job, now)


def skip_dependents(m: Model, failed: jobs_pb2.Job, now: int) -> None:
    """Every job waiting (transitively) on `failed` can never run: SKIPPED, naming the cause.

    Iterative, so a long dependency chain cannot hit the recursion limit inside apply.
    """
    stack = [failed]
    while stack:
        cause = stack.pop()
        reason = f"dependency {cause.id} {state_name(cause.state)}"
        for dependent in _dependents(m, cause):
            # Only PENDING can wait on an unfinished dependency; the others already moved on.
            if dependent.state == J.JOB_STATE_PENDING:
                m.set_state(dependent, J.JOB_STATE_SKIPPED, now, reason)
                stack.append(dependent)


def initial_state(m: Model, spec: jobs_pb2.JobSpec) -> tuple[int, str]:
    """The state of a new job from its dependencies' states (all of them exist: checked before)."""
    waiting = False
    for dep in spec.depends_on:
        state = _state_of(m, dep)
        if state in TERMINAL and state != J.JOB_STATE_SUCCEEDED:
            return J.JOB_STATE_SKIPPED, f"dependency {dep} {state_name(state)}"
        waiting = waiting or state != J.JOB_STATE_SUCCEEDED
    if waiting:
        return J.JOB_STATE_PENDING, "waiting for dependencies"
    return J.JOB_STATE_QUEUED, ""
