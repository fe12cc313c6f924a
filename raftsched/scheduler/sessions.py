"""The leader's live view of one executor's stream: what it offers, when it was last heard from,
what it may be sent. Nothing here is replicated; a new leader rebuilds it as executors reconnect."""

from __future__ import annotations

import asyncio
import logging
import time

from raftsched.v1 import executor_pb2, jobs_pb2

log = logging.getLogger("raftsched.scheduler")
OUTBOX_LIMIT = 4096  # messages queued for one executor before we consider it too slow


class ExecutorSession:
    def __init__(self, register: executor_pb2.Register) -> None:
        self.id = register.executor_id
        self.slots = register.slots  # 1..MAX_EXECUTOR_SLOTS: checked before a session is made
        self.labels = dict(register.labels)
        self.handlers = set(register.handlers)
        self.draining = register.draining
        self.outbox: asyncio.Queue[executor_pb2.LeaderMessage] = asyncio.Queue(OUTBOX_LIMIT)
        self.closed = asyncio.Event()
        self.lease_granted_at = 0.0  # monotonic time of the last heartbeat ack (0: never)
        self.last_heard = time.monotonic()  # of its last message (the register, at first)
        self.reports: asyncio.Queue[executor_pb2.ExecutorMessage] = asyncio.Queue(OUTBOX_LIMIT)
        # Attempts we told it to kill that may still hold their slots: (job, attempt) -> slots.
        # Counted as busy until a heartbeat no longer lists them, so we never over-assign.
        self.dying: dict[tuple[str, int], int] = {}
        # Attempts it reported ended whose results are being replicated: (job, attempt) -> slots.
        # Their slots are free on the executor; the dispatcher counts them free while the state
        # machine still counts them in use (and no longer once the results applied).
        self.finishing: dict[tuple[str, int], int] = {}

    def __repr__(self) -> str:
        return f"ExecutorSession({self.id}, slots={self.slots}, draining={self.draining})"

    @property
    def open(self) -> bool:
        return not self.closed.is_set()

    def can_take_work(self) -> bool:
        return self.open and not self.draining and self.lease_granted_at > 0

    def send(self, msg: executor_pb2.LeaderMessage) -> None:
        if not self.open:
            return
        try:
            self.outbox.put_nowait(msg)
        except asyncio.QueueFull:
            log.warning("executor %s: outbox full, closing its stream", self.id)
            self.close()

    def close(self) -> None:
        self.closed.set()

    def cancel(self, refs: list[jobs_pb2.AttemptRef], slots: dict[str, int]) -> None:
        """Tell the executor to kill `refs`; their slots stay busy until they are gone."""
        if not refs:
            return
        for ref in refs:
            self.dying[(ref.job_id, ref.attempt)] = slots.get(ref.job_id, 1)
        self.send(executor_pb2.LeaderMessage(cancel=refs))

    def forget_dead(self, running: set[tuple[str, int]]) -> None:
        """A heartbeat listed what still runs: whatever we were waiting to die is gone."""
        for key in [k for k in self.dying if k not in running]:
            del self.dying[key]

    def dying_slots(self) -> int:
        return sum(self.dying.values())

    def accepts(self, spec: jobs_pb2.JobSpec) -> bool:
        """The executor carries every label the job asks for, and its handler if it names one."""
        if spec.handler and self.handlers and spec.handler not in self.handlers:
            return False
        return all(self.labels.get(k) == v for k, v in spec.labels.items())

    def grant_lease(self) -> None:
        self.lease_granted_at = time.monotonic()

    def heard(self, now: float) -> None:
        self.last_heard = now

    def silent_for(self, now: float) -> float:
        return now - self.last_heard
