"""Shared by the schedule tests: specs, a leader that plans on an injected clock, and queries."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from state.sm_harness import Node

from raftsched.jobstates import TERMINAL
from raftsched.scheduler.schedules import plan_commands
from raftsched.state import commands as c
from raftsched.v1 import commands_pb2, jobs_pb2, scheduler_pb2

S = scheduler_pb2
T0 = 1_700_000_000_000  # the harness's clock start: a whole second (and minute: 22:13:20 UTC)


def spec(name: str = "s", **fields: Any) -> scheduler_pb2.ScheduleSpec:
    if "cron" not in fields and "every_ms" not in fields:
        fields["every_ms"] = 1000
    fields.setdefault("template", jobs_pb2.JobSpec(handler="noop"))
    return S.ScheduleSpec(name=name, **fields)


def local_ms(zone: str, *parts: int) -> int:
    return int(datetime(*parts, tzinfo=ZoneInfo(zone)).timestamp() * 1000)  # type: ignore[misc]


def create(node: Node, s: scheduler_pb2.ScheduleSpec) -> scheduler_pb2.Schedule:
    result = node.run(commands_pb2.Command(create_schedule=commands_pb2.CreateScheduleCmd(spec=s)))
    assert not result.error, result.error
    return result.schedule


def fire(node: Node, name: str, t: int, *, manual: bool = False) -> commands_pb2.ApplyResult:
    cmd = commands_pb2.FireScheduleCmd(name=name, scheduled_time=t, manual=manual)
    return node.run(commands_pb2.Command(fire_schedule=cmd))


def pause(node: Node, name: str, paused: bool = True, note: str = "") -> commands_pb2.ApplyResult:
    cmd = commands_pb2.PauseScheduleCmd(name=name, paused=paused, note=note)
    return node.run(commands_pb2.Command(pause_schedule=cmd))


def leader_round(node: Node, now: int | None = None) -> list[commands_pb2.Command]:
    """What the leader's firing loop does in one round, on the harness's clock: plan every
    schedule from the applied state and apply the commands in order. Returns them."""
    at = node.now if now is None else now
    done: list[commands_pb2.Command] = []
    for schedule in node.state.schedules():
        last = node.state.get_job(schedule.last_job_id) if schedule.last_job_id else None
        ended = last is None or last.state in TERMINAL
        commands, _ = plan_commands(schedule, at, last_job_ended=ended, release_when_due=True)
        for cmd in commands:
            node.run(cmd, at=at)
        done.extend(commands)
    return done


def jobs_of(node: Node, name: str) -> list[jobs_pb2.Job]:
    jobs, _ = node.list_jobs(schedule=name, page_size=1000)
    return jobs


def scheduled_times(node: Node, name: str) -> list[int]:
    return [j.scheduled_time for j in jobs_of(node, name) if "/manual/" not in j.spec.idempotency_key]


def skipped(node: Node, name: str) -> list[tuple[int, str]]:
    schedule = node.state.schedule(name)
    assert schedule is not None
    return [(s.scheduled_time, s.reason) for s in schedule.skipped]


def finish(node: Node, job_id: str, end: int = jobs_pb2.ATTEMPT_END_SUCCEEDED) -> None:
    node.assign(job_id)
    attempt = node.job(job_id).attempts[-1].number
    node.start(job_id, attempt)
    assert not node.finish(job_id, attempt, end).error


__all__ = ["T0", "Node", "c"]
