"""What the leader lets through from an executor (issue 14; STYLE "Do" 12): the limits of the
Executor protocol, whether an attempt an executor reports on is one it holds, and the refusals,
counted by kind and reason and logged at most once per kind and reason per `LOG_INTERVAL_S`.

Whether an executor holds an attempt is read from the state machine's record of every attempt
(`job.attempts[*].executor`, kept for the life of the job):

- CURRENT: the job's in-flight attempt, given to this executor. Its reports are proposed.
- LOST: an attempt this executor was given and no longer holds (timed out, cancelled, fenced at a
  re-register, its executor declared down). Late news of it is legitimate: a result is proposed
  and recorded as stale at apply (SPEC §6.4, `stale_results_refused`), an attempt it still runs is
  cancelled (fencing), a late `started` is dropped (it could only be refused at apply).
- NEVER: the job is unknown, or that attempt was never given to this executor (it does not exist,
  or another executor has it). A forged or buggy report: refused here, never proposed, counted and
  logged; a running or started one is cancelled, a result is acknowledged so the executor forgets it.

The leader judges only once its state machine has applied everything committed before its term
(`LeaderScheduler` waits for a read barrier), so an assignment the previous leader made is never
taken for one this executor never held.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Callable
from dataclasses import dataclass

from raftsched.quoting import quote
from raftsched.state.handlers import RESULT_ENDS
from raftsched.state.validate import MAX_EXECUTOR_SLOTS, ValidationError, validate_executor
from raftsched.v1 import executor_pb2, jobs_pb2

log = logging.getLogger("raftsched.scheduler")

MAX_RUNNING_REFS = MAX_EXECUTOR_SLOTS  # an attempt takes a slot at least: no more run at once
MAX_INCARNATION_CHARS = 64  # the agent sends 32 hex digits
MAX_REPORT_ITEMS = 10_000  # started + finished (+ unacked) in one message; the agent sends <= 1,000
# (and re-sends at most 10,000 unacknowledged results in a register: raftsched.executor.agent)
LOG_INTERVAL_S = 10.0


class Holding(enum.Enum):
    CURRENT = "current"
    LOST = "lost"
    NEVER = "never"


def holding(job: jobs_pb2.Job | None, attempt: int, executor: str) -> Holding:
    """Does `executor` hold attempt `attempt` of `job` (None: the job is unknown)? See the module doc."""
    if job is None:
        return Holding.NEVER
    given = [a for a in job.attempts if a.number == attempt and a.executor == executor]
    if not given:
        return Holding.NEVER
    last = job.attempts[-1]
    if given[0] is last and last.end == jobs_pb2.ATTEMPT_END_UNSPECIFIED:
        return Holding.CURRENT
    return Holding.LOST


class Kind(enum.StrEnum):
    """What was refused; the `kind` label of raftsched_executor_messages_refused_total."""

    REGISTER = "register"  # a whole registration (the stream ends with the status said)
    MESSAGE = "message"  # a whole later message out of the protocol's limits (the stream ends)
    RUNNING = "running"  # one attempt a heartbeat or register says it runs
    STARTED = "started"  # one TaskStarted
    FINISHED = "finished"  # one TaskFinished (also from register.unacked)


class Reason(enum.StrEnum):
    """Why; the `reason` label."""

    INVALID = "invalid"  # a field out of its limits (INVALID_ARGUMENT)
    IDENTITY = "identity"  # the caller's certificate or token names another executor (PERMISSION_DENIED)
    DUPLICATE = "duplicate"  # the id has a live session (ALREADY_EXISTS)
    UNKNOWN_JOB = "unknown-job"  # the report names no job this cluster has
    NOT_HELD = "not-held"  # the job exists, but that attempt was never given to this executor
    BAD_END = "bad-end"  # a result with an end an executor does not report


@dataclass(frozen=True, slots=True)
class Refusal:
    kind: Kind
    reason: Reason
    executor: str
    detail: str  # for the log: bounded (ids echoed at most ECHO_CHARS)


class Refusals:
    """Counts refusals by (kind, reason) for the node's life (across leaderships) and logs one
    line per (kind, reason) per `interval`, saying how many more were refused since the last."""

    def __init__(self, *, clock: Callable[[], float], interval: float = LOG_INTERVAL_S) -> None:
        """`clock`: monotonic seconds (the shell passes time.monotonic; the core's simulation its own)."""
        self.counts: dict[tuple[Kind, Reason], int] = {}
        self._interval = interval
        self._clock = clock
        self._last_line: dict[tuple[Kind, Reason], float] = {}
        self._suppressed: dict[tuple[Kind, Reason], int] = {}

    def add(self, refusal: Refusal) -> bool:
        """Count it; returns whether it was logged."""
        key = (refusal.kind, refusal.reason)
        self.counts[key] = self.counts.get(key, 0) + 1
        now = self._clock()
        last = self._last_line.get(key)
        if last is not None and now - last < self._interval:
            self._suppressed[key] = self._suppressed.get(key, 0) + 1
            return False
        self._last_line[key] = now
        more = self._suppressed.pop(key, 0)
        tail = f" ({more} more refused for this reason since the last line)" if more else ""
        log.warning("executor %s: refused %s: %s: %s%s", quote(refusal.executor), refusal.kind.value,
                    refusal.reason.value, refusal.detail, tail)
        return True

    def total(self) -> int:
        return sum(self.counts.values())


# --- the protocol's limits ---------------------------------------------------------------------


def check_register(reg: executor_pb2.Register) -> None:
    """Raise ValidationError (naming the field) when a registration is out of the protocol's limits."""
    validate_executor(reg.executor_id, reg.slots, reg.labels, reg.handlers)
    if len(reg.running) > MAX_RUNNING_REFS:
        raise ValidationError("running", f"at most {MAX_RUNNING_REFS} attempts, got {len(reg.running)}")
    if len(reg.unacked) > MAX_REPORT_ITEMS:
        raise ValidationError("unacked", f"at most {MAX_REPORT_ITEMS} results, got {len(reg.unacked)}")
    if len(reg.incarnation) > MAX_INCARNATION_CHARS:
        raise ValidationError("incarnation", f"at most {MAX_INCARNATION_CHARS} characters, "
                              f"got {len(reg.incarnation)}")


def check_message(msg: executor_pb2.ExecutorMessage) -> None:
    """Raise ValidationError when a message after the registration is out of the protocol's limits."""
    if len(msg.heartbeat.running) > MAX_RUNNING_REFS:
        raise ValidationError("heartbeat.running", f"at most {MAX_RUNNING_REFS} attempts, "
                              f"got {len(msg.heartbeat.running)}")
    items = len(msg.started) + len(msg.finished)
    if items > MAX_REPORT_ITEMS:
        raise ValidationError("started", f"at most {MAX_REPORT_ITEMS} started and finished items in one "
                              f"message, got {items}")


def result_end_ok(item: executor_pb2.TaskFinished) -> bool:
    return item.end in RESULT_ENDS


def describe(job_id: str, attempt: int, job: jobs_pb2.Job | None) -> str:
    """Why an attempt is not this executor's, for the log."""
    if job is None:
        return f"{quote(job_id)}/{attempt}: no such job"
    owner = next((a.executor for a in job.attempts if a.number == attempt), None)
    if owner is None:
        return f"{job_id}/{attempt}: no such attempt (the job has {len(job.attempts)})"
    return f"{job_id}/{attempt}: given to {owner}"
