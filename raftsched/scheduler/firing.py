"""Schedule firing as commands (pure): turns `firetimes.plan` into FireScheduleCmd / SkipFiresCmd,
and a buffered time whose blocking job ended before it was due into ReleaseBufferedCmd once due.

The core proposes them; the state machine decides (a time at or below a schedule's watermark
`decided_until` is refused, so a proposal repeated by a later leader changes nothing).
"""

from __future__ import annotations

from raftsched.state import firetimes
from raftsched.state.schedules import MAX_SKIPS_PER_CMD, decided_until, release_due
from raftsched.v1 import commands_pb2, scheduler_pb2

NO_WINDOW_MS = 10 * 365 * 86_400_000  # what a planted bug uses as the catch-up window


def fire_cmd(name: str, t: int, *, manual: bool = False, release_when_due: bool = False) -> commands_pb2.Command:
    return commands_pb2.Command(fire_schedule=commands_pb2.FireScheduleCmd(
        name=name, scheduled_time=t, manual=manual, release_when_due=release_when_due))


def release_cmd(name: str, t: int) -> commands_pb2.Command:
    return commands_pb2.Command(release_buffered=commands_pb2.ReleaseBufferedCmd(name=name, scheduled_time=t))


def skip_cmd(name: str, fires: list[tuple[int, str]]) -> commands_pb2.Command:
    items = [scheduler_pb2.SkippedFire(scheduled_time=t, reason=reason) for t, reason in fires]
    return commands_pb2.Command(skip_fires=commands_pb2.SkipFiresCmd(name=name, fires=items))


def plan_commands(schedule: scheduler_pb2.Schedule, now: int, *, last_job_ended: bool = False,
                  release_when_due: bool = False, ignore_window: bool = False,
                  manual: bool = False) -> tuple[list[commands_pb2.Command], int | None]:
    """The commands that carry out `firetimes.plan` for one schedule, in the order to propose them
    (a buffered time's release first, then a firing alone, runs of skipped times together), and
    the next due moment. `last_job_ended`: the schedule's last job is terminal (or gone).
    `release_when_due`: every member reads FireScheduleCmd.release_when_due (raftsched.features).
    `ignore_window` and `manual` exist only for planted bugs (raftsched.scheduler.bugs)."""
    spec = schedule.spec
    if ignore_window:
        spec = type(spec)()
        spec.CopyFrom(schedule.spec)
        spec.catchup_window_ms = NO_WINDOW_MS
        spec.catchup_max = 1000
    plan = firetimes.plan(spec, decided_until(schedule), now, paused=schedule.paused)
    out: list[commands_pb2.Command] = []
    next_due = plan.next_due_ms
    waiting = release_due(schedule, last_job_ended)
    if waiting is not None and waiting <= now:
        out.append(release_cmd(schedule.id, schedule.last_fired_time))
    elif waiting is not None:
        next_due = waiting if next_due is None else min(next_due, waiting)
    skips: list[tuple[int, str]] = []
    for d in plan.decisions:
        if not d.fire:
            skips.append((d.time, d.reason))
        if skips and (d.fire or len(skips) >= MAX_SKIPS_PER_CMD):
            out.append(skip_cmd(schedule.id, skips))
            skips = []
        if d.fire:
            out.append(fire_cmd(schedule.id, d.time, manual=manual, release_when_due=release_when_due))
    if skips:
        out.append(skip_cmd(schedule.id, skips))
    return out, next_due


__all__ = ["fire_cmd", "plan_commands", "release_cmd", "skip_cmd"]
