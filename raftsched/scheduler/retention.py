"""Leader-only history keeping (SPEC §5, promise 12): propose the deletions that job retention,
schedule history limits and the idempotency window call for.

The leader decides by its clock; the state machine decides what is safe (a finished job nothing
live depends on), so a purge proposed by a leader that lost its lease, or twice, changes nothing
it should not. Each command carries explicit ids, at most `batch` of each kind, and commands are
spaced by `1 / batches_per_second`, so a backlog of a million finished jobs drains steadily
without stalling submits. A round runs every `ROUND_S`; a job that aged is gone within one round
(plus the time to drain whatever backlog is ahead of it).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

from raftsched.state import commands as cmds
from raftsched.v1 import commands_pb2, scheduler_pb2

log = logging.getLogger("raftsched.retention")
ROUND_S = 1.0
RETRY_S = 1.0
SCAN_FACTOR = 10  # finished jobs a round may step over (held by live dependants) per job it purges


@dataclass(frozen=True, slots=True)
class RetentionPolicy:
    job_retention_ms: int  # 0: finished jobs are kept forever (schedule limits still apply)
    idempotency_window_ms: int  # 0: a key lives as long as its job
    batch: int = 1000
    batches_per_second: float = 5.0


class HistoryReader(Protocol):
    """The read side of the state machine this needs (`SchedulerState`)."""

    def expired_jobs(self, ended_before_ms: int, limit: int, scan_limit: int) -> list[str]: ...
    def excess_schedule_jobs(self, name: str, keep_succeeded: int, keep_failed: int, limit: int) -> list[str]: ...
    def expired_keys(self, made_before_ms: int, limit: int) -> list[str]: ...
    def schedules(self) -> list[scheduler_pb2.Schedule]: ...


def plan(history: HistoryReader, policy: RetentionPolicy, now_ms: int) -> list[commands_pb2.Command]:
    """The purge commands due now, each within the batch bound (pure: reads only)."""
    out: list[commands_pb2.Command] = []
    limit = policy.batch
    if policy.job_retention_ms:
        cutoff = now_ms - policy.job_retention_ms
        ids = history.expired_jobs(cutoff, limit, limit * SCAN_FACTOR)
        trims = [(s.id, cutoff) for s in history.schedules() if s.skipped and s.skipped[0].scheduled_time < cutoff]
        if ids or trims:
            out.append(cmds.purge(job_ids=ids, trim_skipped=trims[:limit]))
    for schedule in history.schedules():
        keep_s, keep_f = schedule.spec.keep_succeeded, schedule.spec.keep_failed
        if keep_s or keep_f:
            ids = history.excess_schedule_jobs(schedule.id, keep_s, keep_f, limit)
            if ids:
                out.append(cmds.purge(job_ids=ids))
    if policy.idempotency_window_ms:
        keys = history.expired_keys(now_ms - policy.idempotency_window_ms, limit)
        if keys:
            out.append(cmds.purge(idempotency_keys=keys))
    return out


Propose = Callable[[commands_pb2.Command], Awaitable[commands_pb2.ApplyResult]]


class Purger:
    """Runs `plan` while this node leads; owned and stopped by the leader scheduler."""

    def __init__(self, history: HistoryReader, propose: Propose, policy: RetentionPolicy,
                 clock: Callable[[], int]) -> None:
        self._history = history
        self._propose = propose
        self._policy = policy
        self._clock = clock
        self.purged_jobs = 0  # proposed and applied, for the log and tests
        self.failures = 0

    async def run(self) -> None:
        """Rounds until cancelled. A failed round is logged with its cause and retried later."""
        while True:
            try:
                busy = await self.round()
            except asyncio.CancelledError:
                raise
            except Exception:
                self.failures += 1
                log.exception("retention round failed; retrying in %.0f s", RETRY_S)
                busy = False
            await asyncio.sleep(0 if busy else ROUND_S)

    async def round(self) -> bool:
        """Propose what is due now; True when a batch was full (more may be waiting)."""
        commands = plan(self._history, self._policy, self._clock())
        spacing = 1.0 / self._policy.batches_per_second
        full = False
        for i, cmd in enumerate(commands):
            if i:
                await asyncio.sleep(spacing)
            result = await self._propose(cmd)
            done = len(cmd.purge.job_ids) - result.refused_items
            self.purged_jobs += done
            full = full or max(len(cmd.purge.job_ids), len(cmd.purge.idempotency_keys)) >= self._policy.batch
            if done or cmd.purge.idempotency_keys:
                log.info("retention: purged %d finished jobs, forgot %d idempotency keys",
                         done, len(cmd.purge.idempotency_keys))
        if full:
            await asyncio.sleep(spacing)
        return full

