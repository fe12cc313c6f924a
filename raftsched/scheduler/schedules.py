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
            commands, next_due = plan_commands(schedule, now)
            for cmd in commands:
                await self._propose(schedule.id, cmd)
            if next_due is not None:
                wake = next_due if wake is None else min(wake, next_due)
        return wake

    async def _propose(self, name: str, cmd: commands_pb2.Command) -> None:
        result = await self.node.propose_internal(cmd)
        if cmd.HasField("skip_fires"):
            first = cmd.skip_fires.fires[0]
            log.info("schedule %s: recorded %d skipped time(s) from %d (%s)",
                     name, len(cmd.skip_fires.fires), first.scheduled_time, first.reason)
        elif result.job.id:
            t = cmd.fire_schedule.scheduled_time
            log.info("schedule %s: fired %d as job %s, %d ms after its time", name, t, result.job.id,
                     result.job.submitted_ms - t)
        elif result.error:
            log.info("schedule %s: firing refused: %s", name, result.error)


def plan_commands(schedule: scheduler_pb2.Schedule, now: int) -> tuple[list[commands_pb2.Command], int | None]:
    """The commands that carry out `firetimes.plan` for one schedule, in the order to propose them
    (a firing alone, runs of skipped times together), and the next due moment."""
    plan = firetimes.plan(schedule.spec, decided_until(schedule), now, paused=schedule.paused)
    out: list[commands_pb2.Command] = []
    skips: list[tuple[int, str]] = []
    for d in plan.decisions:
        if not d.fire:
            skips.append((d.time, d.reason))
        if skips and (d.fire or len(skips) >= MAX_SKIPS_PER_CMD):
            out.append(skip_cmd(schedule.id, skips))
            skips = []
        if d.fire:
            out.append(fire_cmd(schedule.id, d.time))
    if skips:
        out.append(skip_cmd(schedule.id, skips))
    return out, plan.next_due_ms
