"""The leader's live view of one executor's stream (pure data; the core owns it): what it offers,
when it was last heard from, its lease, what it is killing and finishing. Nothing here is
replicated; a new leader rebuilds it as executors reconnect. Times are monotonic ms."""

from __future__ import annotations

from dataclasses import dataclass, field

from raftsched.v1 import executor_pb2, jobs_pb2

Key = tuple[str, int]  # (job id, attempt)


@dataclass(slots=True)
class Session:
    id: str
    gen: int  # which stream of this executor id (a re-registration gets a new one)
    slots: int  # 1..MAX_EXECUTOR_SLOTS: checked before a session is made
    labels: dict[str, str]
    handlers: set[str]
    draining: bool
    last_heard: int  # of its last message (the register, at first)
    incarnation: str = ""  # the agent process's token ("" from agents before it was sent)
    open: bool = True
    lease_granted_at: int | None = None  # of the last heartbeat ack (None: never)
    # Attempts we told it to kill that may still hold their slots: (job, attempt) -> slots.
    # Counted as busy until a heartbeat no longer lists them, so we never over-assign.
    dying: dict[Key, int] = field(default_factory=dict)
    # Attempts it reported ended whose results are being replicated: (job, attempt) -> slots.
    # Free on the executor, still in use in the state machine until the results apply.
    finishing: dict[Key, int] = field(default_factory=dict)
    # Proposals its registration waits for (executor up, fencing of what it lost); messages that
    # arrive meanwhile wait in `backlog` (the registration's heartbeat first).
    registering: set[int] = field(default_factory=set)
    backlog: list[executor_pb2.ExecutorMessage] = field(default_factory=list)
    reports: list[executor_pb2.ExecutorMessage] = field(default_factory=list)  # not yet proposed
    reports_in_flight: int = 0  # report batches being replicated

    @classmethod
    def of(cls, reg: executor_pb2.Register, gen: int, now: int) -> Session:
        return cls(reg.executor_id, gen, reg.slots, dict(reg.labels), set(reg.handlers), reg.draining, now,
                   reg.incarnation)

    def can_take_work(self) -> bool:
        return self.open and not self.draining and self.lease_granted_at is not None and not self.registering

    def accepts(self, spec: jobs_pb2.JobSpec) -> bool:
        """The executor carries every label the job asks for, and its handler if it names one."""
        if spec.handler and self.handlers and spec.handler not in self.handlers:
            return False
        return all(self.labels.get(k) == v for k, v in spec.labels.items())

    def forget_dead(self, running: set[Key]) -> None:
        """A heartbeat listed what still runs: whatever we were waiting to die is gone."""
        for key in [k for k in self.dying if k not in running]:
            del self.dying[key]

    def dying_slots(self) -> int:
        return sum(self.dying.values())

    def silent_for(self, now: int) -> int:
        return now - self.last_heard
