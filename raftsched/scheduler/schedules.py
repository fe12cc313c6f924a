"""The leader-only firing loop: turns due scheduled times into FireScheduleCmd / SkipFiresCmd.

It only proposes; the state machine decides. Each round reads every schedule's watermark
(`decided_until`), asks `firetimes.plan` what to do with the times due by now, and proposes the
decisions oldest first, one command per firing and one per run of skipped times. A proposal
lost to a leadership change is harmless: the next leader plans again from the committed
watermark, and a firing that did commit is refused if proposed again (promise 11).

The loop sleeps until the next due moment of any schedule (at most MAX_SLEEP_S), or until
`kick()` (a schedule created or resumed, a scheduled job ended).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import TYPE_CHECKING

from raftsched.state import firetimes
from raftsched.state.schedules import MAX_SKIPS_PER_CMD, decided_until
from raftsched.v1 import commands_pb2, scheduler_pb2

if TYPE_CHECKING:
    from raftsched.node import Node

log = logging.getLogger("raftsched.schedules")
MAX_SLEEP_S = 1.0
RETRY_S = 0.2


def now_ms() -> int:
    return int(time.time() * 1000)


def fire_cmd(name: str, t: int, *, manual: bool = False) -> commands_pb2.Command:
    return commands_pb2.Command(fire_schedule=commands_pb2.FireScheduleCmd(name=name, scheduled_time=t, manual=manual))


def skip_cmd(name: str, fires: list[tuple[int, str]]) -> commands_pb2.Command:
    items = [scheduler_pb2.SkippedFire(scheduled_time=t, reason=reason) for t, reason in fires]
    return commands_pb2.Command(skip_fires=commands_pb2.SkipFiresCmd(name=name, fires=items))


class ScheduleFirer:
    """Owned by LeaderScheduler: started when this node becomes leader, stopped when it stops."""

    def __init__(self, node: Node) -> None:
        self.node = node
        self._kick = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._loop(), name="schedules")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def kick(self) -> None:
        self._kick.set()

    async def _loop(self) -> None:
        await self._caught_up()
        while True:
            self._kick.clear()
            try:
                wake = await self.round(now_ms())
            except Exception as err:  # a lost proposal or leadership: plan again from the state
                log.info("schedule round failed: %s", err)
                wake = now_ms() + int(RETRY_S * 1000)
            delay = min(MAX_SLEEP_S, max(0.0, (wake - now_ms()) / 1000)) if wake is not None else MAX_SLEEP_S
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._kick.wait(), delay)

    async def _caught_up(self) -> None:
        """Apply everything earlier leaders committed before planning from it (ReadIndex)."""
        while True:
            try:
                await self.node.driver.read_barrier()
                return
            except Exception as err:
                log.info("schedules wait for the log to be applied: %s", err)
                await asyncio.sleep(RETRY_S)

    async def round(self, now: int) -> int | None:
        """Decide every due time of every schedule; returns the earliest next due moment."""
        wake: int | None = None
        for schedule in self.node.sm.schedules():
            plan = firetimes.plan(schedule.spec, decided_until(schedule), now, paused=schedule.paused)
            await self._execute(schedule.id, plan.decisions)
            if plan.next_due_ms is not None:
                wake = plan.next_due_ms if wake is None else min(wake, plan.next_due_ms)
        return wake

    async def _execute(self, name: str, decisions: list[firetimes.Decision]) -> None:
        skips: list[tuple[int, str]] = []
        for d in decisions:
            if d.fire:
                await self._flush_skips(name, skips)
                await self._fire(name, d.time)
            else:
                skips.append((d.time, d.reason))
                if len(skips) >= MAX_SKIPS_PER_CMD:
                    await self._flush_skips(name, skips)
        await self._flush_skips(name, skips)

    async def _fire(self, name: str, t: int) -> None:
        result = await self.node.propose(fire_cmd(name, t))
        if result.job.id:
            delay = result.job.submitted_ms - t
            log.info("schedule %s fired %d as job %s (%d ms after the scheduled time)", name, t, result.job.id, delay)
        elif result.error:
            log.info("schedule %s: firing %d refused: %s", name, t, result.error)

    async def _flush_skips(self, name: str, skips: list[tuple[int, str]]) -> None:
        if not skips:
            return
        batch = list(skips)
        skips.clear()
        await self.node.propose(skip_cmd(name, batch))
        log.info("schedule %s: recorded %d skipped time(s), first %d (%s)", name, len(batch), *batch[0])
