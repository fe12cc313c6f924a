"""What the CLI prints: protobuf JSON lines for scripts, rich tables for people.

Every function here is pure: it takes messages (and `now_ms` where ages are shown) and returns a
string, a dict or a rich renderable; printing happens in the command handlers.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

from google.protobuf import json_format
from google.protobuf.message import Message
from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from raftsched.clock import now_ms
from raftsched.v1 import admin_pb2, jobs_pb2, notify_pb2, scheduler_pb2

OUTPUT_TAIL_LINES = 20


# --- JSON --------------------------------------------------------------------------------------


def to_dict(message: Message) -> dict[str, Any]:
    """protobuf's standard JSON mapping: lowerCamelCase names, enum names, zero values included."""
    return json_format.MessageToDict(message, always_print_fields_with_no_presence=True)


def to_json(message: Message) -> str:
    """One message as one line of JSON."""
    return json_format.MessageToJson(message, indent=None, always_print_fields_with_no_presence=True)


# --- small formatters ------------------------------------------------------------------------


def short_enum(name: str, prefix: str) -> str:
    return name.removeprefix(prefix)


def job_state(state: int) -> str:
    return short_enum(jobs_pb2.JobState.Name(state), "JOB_STATE_")


def role_name(role: int) -> str:
    return short_enum(admin_pb2.Role.Name(role), "ROLE_").lower()


def format_time(ms: int) -> str:
    """A leader-stamped time (ms since the epoch) in local time; '-' when unset."""
    if not ms:
        return "-"
    seconds = ms / 1000
    day = time.strftime("%Y-%m-%d", time.localtime(seconds))
    clock = time.strftime("%H:%M:%S", time.localtime(seconds)) + f".{ms % 1000:03d}"
    return clock if day == time.strftime("%Y-%m-%d") else f"{day} {clock}"


def format_ms(ms: int) -> str:
    """A span of milliseconds, short: 850ms, 12.5s, 3m04s, 2h10m."""
    if ms < 1000:
        return f"{ms}ms"
    if ms < 60_000:
        return f"{ms / 1000:.1f}s"
    if ms < 3_600_000:
        return f"{ms // 60_000}m{ms % 60_000 // 1000:02d}s"
    return f"{ms // 3_600_000}h{ms % 3_600_000 // 60_000:02d}m"


def format_age(then_ms: int, now: int) -> str:
    return "-" if not then_ms else format_ms(max(0, now - then_ms)) + " ago"


def what_runs(spec: jobs_pb2.JobSpec) -> str:
    if spec.handler:
        return f"handler {spec.handler}"
    return "command " + " ".join(spec.command)


def output_tail(data: bytes, lines: int = OUTPUT_TAIL_LINES) -> str:
    text = data.decode("utf-8", errors="replace").rstrip("\n")
    return "\n".join(text.splitlines()[-lines:])


def plain(value: object) -> Text:
    """User data as literal text (a job named '[red]x' must not be read as markup)."""
    return Text(str(value))


# --- tables ------------------------------------------------------------------------------------


def status_table(response: admin_pb2.StatusResponse) -> Table:
    table = Table(title="cluster" + (f" {response.cluster_id}" if response.cluster_id else ""),
                  title_justify="left")
    for column in ("id", "address", "role", "term", "leader", "commit", "applied", "last contact",
                   "health"):
        table.add_column(column, justify="right" if column in ("term", "commit", "applied") else "left")
    for node in response.nodes:
        table.add_row(plain(node.id), plain(node.address), _role_text(node), str(node.term),
                      plain(node.leader or "-"), str(node.commit_index), str(node.applied_index),
                      _contact(node), _health(node))
    return table


def alarms_table(alarms: Iterable[admin_pb2.Alarm]) -> Table:
    table = Table(title="alarms", title_justify="left")
    for column in ("node", "alarm", "since", "reason"):
        table.add_column(column)
    for alarm in alarms:
        table.add_row(plain(alarm.node), Text(alarm.alarm, style="bold red"), format_time(alarm.raised_ms),
                      plain(alarm.reason))
    return table


def notify_sinks_table(sinks: Iterable[notify_pb2.NotifySink], now: int | None = None) -> Table:
    now = now_ms() if now is None else now
    table = Table(title="notification sinks", title_justify="left")
    for column in ("name", "url", "events", "signed", "pending", "delivered", "failed", "expired", "dropped",
                   "last delivery", "last error"):
        table.add_column(column)
    for sink in sinks:
        error = f"{format_age(sink.last_error_ms, now)}: {sink.last_error}" if sink.last_error else "-"
        table.add_row(plain(sink.name), plain(sink.url), plain(",".join(sink.events) or "all"),
                      "yes" if sink.has_secret else "no", str(sink.pending), str(sink.delivered),
                      str(sink.failed_attempts), str(sink.expired), str(sink.dropped),
                      format_age(sink.last_delivered_ms, now), plain(error))
    return table


def job_counts_line(response: admin_pb2.StatusResponse) -> str:
    """The leader's exact job counts by state, in lifecycle order ("" when no node leads)."""
    leader = next((n for n in response.nodes if n.role == admin_pb2.ROLE_LEADER), None)
    if leader is None or not leader.job_counts:
        return ""
    order = [name.removeprefix("JOB_STATE_") for name, value in jobs_pb2.JobState.items() if value]
    parts = [f"{state}={leader.job_counts.get(state, 0)}" for state in order]
    return f"jobs at index {leader.applied_index}: " + " ".join(parts)


def _role_text(node: admin_pb2.NodeStatus) -> Text:
    name = role_name(node.role) if node.role else "?"
    return Text(name, style="bold green" if node.role == admin_pb2.ROLE_LEADER else "")


def _contact(node: admin_pb2.NodeStatus) -> str:
    if node.role == admin_pb2.ROLE_LEADER:
        return "-"
    return format_ms(node.last_contact_ms) if node.healthy else "-"


def _health(node: admin_pb2.NodeStatus) -> Text:
    if node.alarms:
        return Text(",".join(node.alarms), style="bold red")
    if node.healthy:
        return Text("ok", style="green")
    return Text(node.error or "unhealthy", style="red")


def jobs_table(jobs: Iterable[jobs_pb2.Job], title: str = "jobs") -> Table:
    table = Table(title=title, title_justify="left")
    for column in ("id", "name", "state", "attempts", "executor", "updated"):
        table.add_column(column, no_wrap=column == "id")
    for job in jobs:
        executor = job.attempts[-1].executor if job.attempts else "-"
        table.add_row(plain(job.id), plain(job.spec.name or what_runs(job.spec)), state_text(job.state),
                      str(len(job.attempts)), plain(executor), format_time(job.updated_ms))
    return table


_STATE_STYLES: dict[int, str] = {
    jobs_pb2.JOB_STATE_SUCCEEDED: "green", jobs_pb2.JOB_STATE_FAILED: "red",
    jobs_pb2.JOB_STATE_RUNNING: "cyan", jobs_pb2.JOB_STATE_CANCELLED: "yellow",
    jobs_pb2.JOB_STATE_SKIPPED: "yellow",
}


def state_text(state: int) -> Text:
    return Text(job_state(state), style=_STATE_STYLES.get(state, ""))


def job_detail(job: jobs_pb2.Job) -> RenderableType:
    """Everything about one job: its spec, its times, and every attempt with its output tail."""
    parts: list[RenderableType] = [_job_fields(job)]
    if job.attempts:
        parts.append(_attempts_table(job.attempts))
    for attempt in job.attempts:
        if attempt.output_tail:
            parts.append(Text(f"\noutput of attempt {attempt.number} (tail):", style="bold"))
            parts.append(plain(output_tail(attempt.output_tail)))
    return Group(*parts)


def _job_fields(job: jobs_pb2.Job) -> Table:
    spec = job.spec
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold")
    grid.add_column()
    rows: list[tuple[str, object]] = [
        ("id", job.id), ("name", spec.name or "-"), ("state", job_state(job.state)),
        ("reason", job.state_reason or "-"), ("runs", what_runs(spec)),
        ("payload", _payload_preview(spec.payload)), ("priority", spec.priority),
        ("max attempts", spec.max_attempts or "default (3)"),
        ("timeout", format_ms(spec.timeout_ms) if spec.timeout_ms else "none"),
        ("depends on", ", ".join(spec.depends_on) or "-"),
        ("labels", ", ".join(f"{k}={v}" for k, v in sorted(spec.labels.items())) or "-"),
        ("slots", spec.slots or 1), ("idempotency key", spec.idempotency_key or "-"),
        ("submitted", format_time(job.submitted_ms)), ("updated", format_time(job.updated_ms)),
    ]
    if job.not_before_ms:
        rows.append(("not before", format_time(job.not_before_ms)))
    if job.schedule_id:
        rows += [("schedule", job.schedule_id), ("scheduled time", format_time(job.scheduled_time))]
    if job.stale_results_refused:
        rows.append(("stale results refused", job.stale_results_refused))
    for key, value in rows:
        grid.add_row(key, plain(value))
    return grid


def _payload_preview(payload: bytes, limit: int = 80) -> str:
    if not payload:
        return "-"
    text = payload[:limit].decode("utf-8", errors="replace")
    return repr(text) + (f" ... ({len(payload)} bytes)" if len(payload) > limit else "")


def _attempts_table(attempts: Iterable[jobs_pb2.Attempt]) -> Table:
    table = Table(title="attempts", title_justify="left")
    for column in ("#", "executor", "assigned", "started", "finished", "exit", "end", "error"):
        table.add_column(column)
    for a in attempts:
        end = short_enum(jobs_pb2.AttemptEnd.Name(a.end), "ATTEMPT_END_") if a.end else "current"
        exit_code = str(a.exit_code) if a.finished_ms else "-"
        table.add_row(str(a.number), plain(a.executor or "-"), format_time(a.assigned_ms),
                      format_time(a.started_ms), format_time(a.finished_ms), exit_code, end,
                      plain(a.error or "-"))
    return table


def executors_table(executors: Iterable[jobs_pb2.ExecutorInfo]) -> Table:
    table = Table(title="executors", title_justify="left")
    for column in ("id", "state", "slots free/total", "lease left", "running", "labels", "last seen"):
        table.add_column(column)
    now = now_ms()
    for e in executors:
        running = ", ".join(f"{r.job_id}#{r.attempt}" for r in e.running) or "-"
        labels = ", ".join(f"{k}={v}" for k, v in sorted(e.labels.items())) or "-"
        state = short_enum(jobs_pb2.ExecutorState.Name(e.state), "EXECUTOR_STATE_")
        if e.state == jobs_pb2.EXECUTOR_STATE_QUARANTINED and e.quarantined_until_ms:
            state += f" ({format_ms(max(0, e.quarantined_until_ms - now))} left)"
        table.add_row(plain(e.id), plain(state),
                      f"{e.free_slots}/{e.slots}", format_ms(e.lease_remaining_ms), plain(running),
                      plain(labels), format_age(e.last_seen_ms, now))
    return table


def members_table(response: admin_pb2.ListMembersResponse) -> Table:
    table = Table(title="members", title_justify="left")
    for column in ("id", "address", "kind"):
        table.add_column(column)
    for kind, members in (("voter", response.voters), ("learner", response.learners)):
        for m in members:
            table.add_row(plain(m.id), plain(m.address), kind)
    return table


def schedules_table(schedules: Iterable[scheduler_pb2.Schedule]) -> Table:
    table = Table(title="schedules", title_justify="left")
    for column in ("name", "when", "state", "fired", "skipped", "last fired", "next fire"):
        table.add_column(column)
    for s in schedules:
        next_fire = format_time(s.next_fire_times[0]) if s.next_fire_times else "-"
        table.add_row(plain(s.spec.name), plain(schedule_when(s.spec)), "paused" if s.paused else "active",
                      str(s.fired_count), str(s.skipped_count), format_time(s.last_fired_time), next_fire)
    return table


def schedule_when(spec: scheduler_pb2.ScheduleSpec) -> str:
    if spec.cron:
        return f"cron {spec.cron} ({spec.timezone or 'UTC'})"
    return f"every {format_ms(spec.every_ms)}"


def schedule_detail(schedule: scheduler_pb2.Schedule) -> RenderableType:
    spec = schedule.spec
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold")
    grid.add_column()
    rows: list[tuple[str, object]] = [
        ("name", spec.name), ("id", schedule.id), ("when", schedule_when(spec)),
        ("state", f"paused ({schedule.note})" if schedule.paused and schedule.note
         else "paused" if schedule.paused else "active"),
        ("runs", what_runs(spec.template)),
        ("overlap", short_enum(scheduler_pb2.OverlapPolicy.Name(spec.overlap), "OVERLAP_POLICY_").lower()),
        ("catch-up", short_enum(scheduler_pb2.CatchupPolicy.Name(spec.catchup), "CATCHUP_POLICY_").lower()),
        ("history", _history_limits(spec)),
        ("fired", schedule.fired_count), ("skipped", schedule.skipped_count),
        ("last fired", format_time(schedule.last_fired_time)), ("last job", schedule.last_job_id or "-"),
        ("next fires", ", ".join(format_time(t) for t in schedule.next_fire_times[:5]) or "-"),
    ]
    for key, value in rows:
        grid.add_row(key, plain(value))
    if not schedule.skipped:
        return grid
    skipped = Table(title="recently skipped", title_justify="left")
    skipped.add_column("scheduled time")
    skipped.add_column("reason")
    for s in schedule.skipped:
        skipped.add_row(format_time(s.scheduled_time), plain(s.reason))
    return Group(grid, skipped)


def _history_limits(spec: scheduler_pb2.ScheduleSpec) -> str:
    limits = [f"last {n} {kind}" for n, kind in ((spec.keep_succeeded, "succeeded"), (spec.keep_failed, "failed"))
              if n]
    return "keeps the " + " and ".join(limits) if limits else "kept until the retention period ends"


def watch_line(job: jobs_pb2.Job) -> str:
    """One line per state change of `job watch`."""
    line = f"{format_time(job.updated_ms)}  {job.id}  {job_state(job.state)}"
    if job.attempts:
        last = job.attempts[-1]
        line += f"  attempt {last.number}" + (f" on {last.executor}" if last.executor else "")
    return line + (f"  ({job.state_reason})" if job.state_reason else "")
