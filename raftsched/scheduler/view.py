"""What the pure scheduling core reads: the clocks of an event, and a read-only view of the state
machine (`raftsched.state.machine.SchedulerState` satisfies `StateView`). No I/O, no clock."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol

from raftsched.v1 import jobs_pb2, scheduler_pb2


@dataclass(frozen=True, slots=True)
class Now:
    """The clocks an event happened at: `mono` (monotonic ms: sessions, leases, failure detection)
    and `wall` (ms since the epoch: attempt deadlines, backoff, schedules; the leader's clock,
    which may jump). The core reads no clock: every event and tick carries one of these."""

    mono: int
    wall: int


class StateView(Protocol):
    """The queries of the state machine the core reads (every message returned is a copy, or for
    `iter_queued` a view to finish with before anything else applies)."""

    def get_job(self, job_id: str) -> jobs_pb2.Job | None: ...
    def executor(self, executor_id: str) -> jobs_pb2.ExecutorInfo | None: ...
    def executors(self) -> list[jobs_pb2.ExecutorInfo]: ...
    def attempts_on(self, executor_id: str) -> list[jobs_pb2.AttemptRef]: ...
    def iter_queued(self, now_ms: int) -> Iterator[jobs_pb2.Job]: ...
    def timed_out(self, now_ms: int) -> list[jobs_pb2.AttemptRef]: ...
    def slots_in_use(self, executor_id: str) -> int: ...
    def schedules(self) -> list[scheduler_pb2.Schedule]: ...
