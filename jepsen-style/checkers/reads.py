"""Observations of a job's state: ok gets and ok cancels (a cancel returns the state after it)."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from .history import Op
from .states import Position, position


@dataclass(frozen=True)
class Read:
    op: Op
    job: str
    state: str
    attempt: int
    pos: Position | None  # None for a state name the checkers do not know

    @property
    def stale(self) -> bool:
        return bool(self.op.field("stale", False))

    def brief(self) -> dict[str, Any]:
        return {
            "index": self.op.invoke_index,
            "complete_index": self.op.complete_index,
            "f": self.op.f,
            "process": self.op.process,
            "state": self.state,
            "attempt": self.attempt,
            "stale": self.stale,
        }


def reads_by_job(ops: list[Op]) -> dict[str, list[Read]]:
    out: dict[str, list[Read]] = defaultdict(list)
    for op in ops:
        if op.f in ("get", "cancel") and op.ok and op.field("id") is not None:
            out[str(op.field("id"))].append(as_read(op))
    return out


def as_read(op: Op) -> Read:
    state = str(op.field("state", "UNSPECIFIED")).removeprefix("JOB_STATE_")
    attempt = int(op.field("attempt", 0) or 0)
    return Read(op=op, job=str(op.field("id")), state=state, attempt=attempt, pos=position(state, attempt))
