"""Schedules and durations in words: "every day at 02:00 (Europe/Berlin)", "every 10 seconds"."""

from __future__ import annotations

import re
from datetime import UTC, datetime

from cronsim import CronSim, CronSimError

from raftsched.v1 import scheduler_pb2

_UNITS = (("day", 86_400_000), ("hour", 3_600_000), ("minute", 60_000), ("second", 1000))
_AT_EVERY_DAY = re.compile(r"^At (.+) every day$")

OVERLAP_WORDS = {
    scheduler_pb2.OVERLAP_POLICY_ALLOW: "a time fires even while the previous job still runs",
    scheduler_pb2.OVERLAP_POLICY_SKIP: "a time is skipped while the previous job still runs",
    scheduler_pb2.OVERLAP_POLICY_BUFFER_ONE: "a time waits for the running job (one at most waits)",
    scheduler_pb2.OVERLAP_POLICY_CANCEL_OTHER: "a time cancels the job still running, then fires",
}


def duration_words(ms: int) -> str:
    """10000 -> '10 seconds', 5400000 -> '1 hour 30 minutes', 250 -> '250 ms'."""
    if ms < 1000:
        return f"{ms} ms"
    parts = []
    rest = ms
    for name, size in _UNITS:
        count, rest = divmod(rest, size)
        if count:
            parts.append(f"{count} {name}{'' if count == 1 else 's'}")
    if rest:
        parts.append(f"{rest} ms")
    return " ".join(parts[:2])


def every_words(ms: int) -> str:
    """'every 10 seconds', 'every minute' (not 'every 1 minute')."""
    text = duration_words(ms)
    return "every " + (text[2:] if text.startswith("1 ") and " " not in text[2:] else text)


def cron_words(expr: str, timezone: str = "") -> str:
    """cronsim's English for the expression, with its zone; the expression itself if it cannot."""
    zone = timezone or "UTC"
    try:
        text = CronSim(expr, datetime(2000, 1, 1, tzinfo=UTC)).explain()
    except (CronSimError, ValueError, AttributeError):
        return f"cron {expr} ({zone})"
    match = _AT_EVERY_DAY.match(text)
    text = f"every day at {match.group(1)}" if match else text[:1].lower() + text[1:]
    return f"{text} ({zone})"


def when_words(spec: scheduler_pb2.ScheduleSpec) -> str:
    if spec.cron:
        return cron_words(spec.cron, spec.timezone)
    return every_words(spec.every_ms)


def catchup_words(spec: scheduler_pb2.ScheduleSpec) -> str:
    window = duration_words(spec.catchup_window_ms or 3_600_000)
    if spec.catchup == scheduler_pb2.CATCHUP_POLICY_ONCE:
        return f"times missed within {window} fire once, together"
    if spec.catchup == scheduler_pb2.CATCHUP_POLICY_ALL:
        return f"every time missed within {window} fires (at most {spec.catchup_max or 100})"
    return "times missed (no leader to fire them) are skipped"
