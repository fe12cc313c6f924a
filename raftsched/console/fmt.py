"""Template filters and view helpers: plain values in, plain strings or numbers out.

Nothing here marks text safe: the templates escape everything they are given (autoescape), and
the drawings (sparklines, attempt timelines) are numbers placed into SVG attributes.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from raftsched.cli.output import format_ms
from raftsched.jobstates import TERMINAL
from raftsched.v1 import admin_pb2, jobs_pb2

OUTPUT_TAIL_CHARS = 4096
JOB_STATES = [name.removeprefix("JOB_STATE_") for name in jobs_pb2.JobState.keys()[1:]]


def when(ms: int) -> str:
    """A leader-stamped time in UTC, to the millisecond; '-' when unset."""
    if not ms:
        return "-"
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(ms / 1000)) + f".{ms % 1000:03d} UTC"


def iso(ms: int) -> str:
    """For <time datetime=...>."""
    if not ms:
        return ""
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ms / 1000)) + f".{ms % 1000:03d}Z"


def span(ms: int) -> str:
    """850ms, 12.5s, 3m04s, 2h10m, 3d04h."""
    ms = max(0, int(ms))
    if ms >= 172_800_000:
        return f"{ms // 86_400_000}d{ms % 86_400_000 // 3_600_000:02d}h"
    return format_ms(ms)


def when_in(ms: int, zone_name: str) -> str:
    """The wall-clock time in a schedule's zone: '02:00 Europe/Berlin'."""
    if not ms or not zone_name or zone_name == "UTC":
        return ""
    try:
        local = datetime.fromtimestamp(ms / 1000, ZoneInfo(zone_name))
    except (ZoneInfoNotFoundError, ValueError):
        return ""
    return local.strftime("%Y-%m-%d %H:%M:%S ") + zone_name


def ago(then_ms: int, now: int) -> str:
    if not then_ms:
        return "-"
    delta = now - then_ms
    return f"in {span(-delta)}" if delta < 0 else f"{span(delta)} ago"


def job_state(state: int) -> str:
    return jobs_pb2.JobState.Name(state).removeprefix("JOB_STATE_")


def executor_state(state: int) -> str:
    return jobs_pb2.ExecutorState.Name(state).removeprefix("EXECUTOR_STATE_")


def role(value: int) -> str:
    return admin_pb2.Role.Name(value).removeprefix("ROLE_").lower().replace("_", "-") if value else "?"


def attempt_end(end: int) -> str:
    return jobs_pb2.AttemptEnd.Name(end).removeprefix("ATTEMPT_END_").replace("_", " ").lower() if end else "current"


def css(name: str) -> str:
    """A class name from a state name: 'SUCCEEDED' -> 'st-succeeded'."""
    return "st-" + "".join(c if c.isalnum() else "-" for c in name.lower())


def text(data: bytes, limit: int = OUTPUT_TAIL_CHARS) -> str:
    return data[-limit:].decode("utf-8", errors="replace")


def payload(data: bytes, limit: int = 200) -> str:
    if not data:
        return "-"
    shown = data[:limit].decode("utf-8", errors="replace")
    return shown + (f" ... ({len(data)} bytes)" if len(data) > limit else "")


def runs(spec: jobs_pb2.JobSpec) -> str:
    if spec.handler:
        return f"handler {spec.handler}"
    return "command " + " ".join(spec.command)


def labels(values: dict[str, str]) -> str:
    return ", ".join(f"{k}={v}" for k, v in sorted(values.items())) or "-"


def sparkline(values: Sequence[float], width: float = 300, height: float = 40) -> str:
    """SVG polyline points for `values`, scaled to the box (the highest value touches the top)."""
    if not values:
        return ""
    top = max(values) or 1.0
    step = width / max(1, len(values) - 1)
    return " ".join(f"{i * step:.1f},{height - (v / top) * (height - 2) - 1:.1f}" for i, v in enumerate(values))


@dataclass(frozen=True, slots=True)
class Bar:
    """One attempt on the job's timeline, in percent of the span from submit to now or the end."""

    number: int
    wait_x: float  # assigned .. started
    wait_w: float
    run_x: float  # started .. finished (or now)
    run_w: float
    end: str


def timeline(job: jobs_pb2.Job, now: int) -> list[Bar]:
    if not job.attempts:
        return []
    start = job.submitted_ms
    finish = max([now if job.state not in TERMINAL else job.updated_ms, start + 1,
                  *(a.finished_ms for a in job.attempts)])
    total = finish - start

    def pct(ms: int) -> float:
        return round(100.0 * (min(max(ms, start), finish) - start) / total, 2)

    bars = []
    for a in job.attempts:
        started = a.started_ms or a.finished_ms or (now if not a.end else a.assigned_ms)
        ended = a.finished_ms or (now if not a.end else started)
        bars.append(Bar(a.number, pct(a.assigned_ms), max(0.3, pct(started) - pct(a.assigned_ms)),
                        pct(started), max(0.5, pct(ended) - pct(started)), attempt_end(a.end)))
    return bars
