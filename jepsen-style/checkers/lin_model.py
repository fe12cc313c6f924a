"""The sequential model of one job for the linearizability checker.

The job is a register whose value only moves forward through the positions of `states`
(ABSENT -> (1, 0) QUEUED -> (1, 1) ASSIGNED -> (1, 2) RUNNING -> (2, 0) QUEUED -> ... -> terminal).
The scheduler moves it on its own, so between two client operations the value may advance by any
amount; the model advances it lazily, to exactly what the next read observes. Client operations:

- create (a submit of the job's key): ABSENT -> (1, 0); a no-op once the job exists.
- read (an ok get, or an ok cancel that returned a state other than CANCELLED): the value must be
  reachable, i.e. not below the current one, and a terminal state never changes.
- cancel: on a live job it writes CANCELLED; on a terminal job it does nothing. When the history
  holds a cancel of the job, CANCELLED is reached only through one (reads cannot see it earlier).

What the job could ever have been comes from its final state: terminal reads must name its final
state and last attempt, and no read may name an attempt it never had. A job missing from the
final state (a lost write) is left unconstrained here: `lost_writes` reports it.
"""

from __future__ import annotations

from typing import NamedTuple

from .states import ABSENT, INITIAL, NOT_FOUND, TERMINAL, TERMINAL_EPOCH, WAITING, JobView, Position, position

TERMINAL_POS: Position = (TERMINAL_EPOCH, 3)
UNKNOWN = ""  # the observed state of an op whose outcome is unknown


class JobOp(NamedTuple):
    kind: str  # "create" | "read" | "cancel"
    state: str  # observed state name; UNKNOWN for an info op
    attempt: int


class JobState(NamedTuple):
    pos: Position
    terminal: str  # the terminal state's name at TERMINAL_POS, else ""


START = JobState(ABSENT, "")
CANCELLED = JobState(TERMINAL_POS, "CANCELLED")


class JobModel:
    def __init__(self, final: JobView | None, *, cancel_gated: bool) -> None:
        self.final = final
        self.cancel_gated = cancel_gated

    def step(self, s: JobState, op: JobOp) -> JobState | None:
        if op.kind == "create":
            return JobState(INITIAL, "") if s.pos == ABSENT else s
        if op.kind == "cancel":
            return self._cancel(s, op)
        return self._read(s, op.state, op.attempt, gated=self.cancel_gated)

    def possible(self, state: str, attempt: int | None) -> bool:
        """Whether the job ever was in `state` with `attempt`, judging by its final state."""
        f = self.final
        if f is None or state == NOT_FOUND:
            return True
        if state in TERMINAL:
            return state == f.state and (attempt is None or attempt == f.last_attempt)
        if attempt is None:
            return True
        if state in WAITING:
            return 0 <= attempt <= f.last_attempt
        return 1 <= attempt <= f.last_attempt

    def _read(self, s: JobState, state: str, attempt: int, *, gated: bool) -> JobState | None:
        pos = position(state, attempt)
        if pos is None:
            return None
        if pos == ABSENT:
            return s if s.pos == ABSENT else None
        if s.pos == ABSENT or pos < s.pos or not self.possible(state, attempt):
            return None
        if s.terminal:
            return s if state == s.terminal else None
        if state == "CANCELLED" and gated:
            return None
        return JobState(pos, state if state in TERMINAL else "")

    def _cancel(self, s: JobState, op: JobOp) -> JobState | None:
        if op.state == UNKNOWN:  # took effect here, or never (the search may leave it out)
            if s.pos == ABSENT or s.terminal:
                return s
            return CANCELLED if self.possible("CANCELLED", None) else None
        if op.state == "CANCELLED":
            if s.pos == ABSENT or (s.terminal and s.terminal != "CANCELLED"):
                return None
            return CANCELLED if self.possible("CANCELLED", op.attempt) else None
        return self._read(s, op.state, op.attempt, gated=False)


def describe(s: JobState) -> str:
    if s.pos == ABSENT:
        return "not created"
    if s.terminal:
        return s.terminal
    epoch, rank = s.pos
    if rank == 0:
        return f"QUEUED/PENDING for attempt {epoch}"
    return f"{'ASSIGNED' if rank == 1 else 'RUNNING'} attempt {epoch}"
