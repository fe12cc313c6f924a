"""Job states as the checkers order them, and tolerant readers of final_state.json jobs.

A job moves through positions ordered as (epoch, rank):

    PENDING/QUEUED waiting for attempt n        -> (n, 0)
    ASSIGNED / RUNNING with attempt n           -> (n, 1) / (n, 2)
    any terminal state                          -> (TERMINAL_EPOCH, 3)   (absorbing)

The `attempt` a read reports is the number of the job's latest attempt (0 before the first), as in
`raftsched.state.model.last_attempt_number`: attempts are created on assignment, so a job QUEUED
after attempt n failed waits for attempt n + 1, and its epoch is n + 1. A job that does not exist
(yet) is at ABSENT, below every other position.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from typing import Any

Position = tuple[int, int]

TERMINAL = frozenset({"SUCCEEDED", "FAILED", "CANCELLED", "SKIPPED"})
WAITING = frozenset({"PENDING", "QUEUED"})
ACTIVE_RANK = {"ASSIGNED": 1, "RUNNING": 2}
NOT_FOUND = "NOT_FOUND"
TERMINAL_EPOCH = 2**62
ABSENT: Position = (-1, -1)
INITIAL: Position = (1, 0)


def state_name(raw: Any) -> str:
    """'JOB_STATE_RUNNING' or 'RUNNING' -> 'RUNNING'; a missing proto3 enum means UNSPECIFIED."""
    name = str(raw or "UNSPECIFIED")
    return name.removeprefix("JOB_STATE_")


def position(state: str, attempt: int) -> Position | None:
    """The position of an observed (state, attempt); None for a state that has none."""
    if state in TERMINAL:
        return (TERMINAL_EPOCH, 3)
    if state in WAITING:
        return (attempt + 1, 0)
    if state in ACTIVE_RANK:
        return (attempt, ACTIVE_RANK[state])
    if state == NOT_FOUND:
        return ABSENT
    return None


def pick(d: dict[str, Any], camel: str, snake: str, default: Any = None) -> Any:
    """A field of a protobuf-JSON dict, whether written with camelCase or proto field names."""
    if camel in d:
        return d[camel]
    return d.get(snake, default)


@dataclass(frozen=True)
class AttemptView:
    number: int
    executor: str
    end: str  # without the ATTEMPT_END_ prefix; "UNSPECIFIED" while current
    output: str = ""  # the recorded output tail (the workload's task ends it with "ran JOB ATTEMPT EXECUTOR")


@dataclass(frozen=True)
class JobView:
    """The parts of a final-state job the checkers read."""

    id: str
    state: str
    attempts: tuple[AttemptView, ...]
    idempotency_key: str
    stale_results_refused: int
    handler: str = ""  # a built-in executor handler (noop, ...): runs no process, writes no ledger line

    @property
    def last_attempt(self) -> int:
        return self.attempts[-1].number if self.attempts else 0

    @property
    def terminal(self) -> bool:
        return self.state in TERMINAL


def _text(raw: Any) -> str:
    """An output tail as text: bytes fields come base64-encoded in the final state's JSON."""
    if isinstance(raw, bytes):
        return raw.decode(errors="replace")
    try:
        return base64.b64decode(str(raw), validate=True).decode(errors="replace")
    except (binascii.Error, ValueError):
        return str(raw)


def job_view(job_id: str, job: dict[str, Any]) -> JobView:
    attempts = tuple(
        AttemptView(
            number=int(a.get("number", 0)),
            executor=str(a.get("executor", "")),
            end=str(a.get("end") or "UNSPECIFIED").removeprefix("ATTEMPT_END_"),
            output=_text(pick(a, "outputTail", "output_tail", "")),
        )
        for a in job.get("attempts") or []
    )
    spec = job.get("spec") or {}
    return JobView(
        id=str(job.get("id") or job_id),
        state=state_name(job.get("state")),
        attempts=attempts,
        idempotency_key=str(pick(spec, "idempotencyKey", "idempotency_key", "")),
        stale_results_refused=int(pick(job, "staleResultsRefused", "stale_results_refused", 0)),
        handler=str(spec.get("handler") or ""),
    )
