"""When a schedule fires: pure functions of (spec, last decided time, now). No clock is read here.

Times are ms since the Unix epoch. A schedule's *scheduled times* are

    cron   the times CronSim yields in the spec's IANA zone (5 fields, or 6 with seconds first);
           daylight-saving changes follow cronsim's documented rules, which are Debian cron's:
           a time skipped by a spring-forward fires at the first valid minute after the gap, and
           a time repeated by a fall-back fires once (the first occurrence)
    every  start_ms + k * every_ms (k >= 0), or k * every_ms when no start is set, so that
           `--every 10s` fires on :00, :10, ... whatever the creation time

restricted to [start_ms, end_ms] (0: open). A time t is *due* at t + jitter(t), where the jitter is
a hash of (schedule name, t) below jitter_ms: every leader derives the same one.

`plan` decides what a leader does with the undecided times up to now (catch-up policy, pause):
the state machine then accepts at most one decision per (schedule, time), whoever proposes it.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cronsim import CronSim, CronSimError

from raftsched.quoting import quote
from raftsched.v1 import scheduler_pb2

S = scheduler_pb2
DEFAULT_CATCHUP_WINDOW_MS = 3_600_000
DEFAULT_CATCHUP_MAX = 100
ON_TIME_GRACE_MS = 1000  # a time fired within this of its due moment is on time, not caught up
ENUMERATE_LIMIT = 100_000  # scheduled times looked at in one plan; the rest wait for the next one

MAX_TZ_CHARS = 64  # the longest IANA name is 32 characters (America/Argentina/ComodRivadavia)
# IANA names: parts of letters, digits, '_', '+', '-' (no '.', so no "..", "zone.tab" or "__init__.py").
TZ_NAME_RE = re.compile(r"[A-Za-z0-9_+-]{1,30}(?:/[A-Za-z0-9_+-]{1,30}){0,3}")

MISSED, OVERLAP, PAUSED, OUTSIDE_WINDOW = "missed", "overlap", "paused", "outside window"


class FireTimeError(ValueError):
    """The spec's cron expression or time zone cannot be evaluated. `field` names the culprit."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


def zone(name: str) -> tzinfo:
    """The IANA zone `name` ("" and "UTC": UTC). Its syntax is checked before any file is opened:
    a 100 KB name used to reach the file system and fail with OSError (issue 14)."""
    if not name or name == "UTC":
        return UTC
    if len(name) > MAX_TZ_CHARS or not TZ_NAME_RE.fullmatch(name):
        raise FireTimeError("timezone", f"{quote(name)} is not an IANA time zone name (like Europe/Paris: at most "
                            f"{MAX_TZ_CHARS} characters of [A-Za-z0-9_+-] in parts separated by '/')")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError) as err:  # OSError: a directory such as "America"
        raise FireTimeError("timezone", f"unknown IANA time zone {quote(name)}") from err


def check_cron(expr: str, tz: str) -> None:
    """Raise FireTimeError unless `expr` parses and fires at least once (within cronsim's 50 years)."""
    fields = len(expr.split())
    if fields not in (5, 6):
        raise FireTimeError("cron", f"{quote(expr)} has {fields} fields: want 5, or 6 with seconds first")
    try:
        next(CronSim(expr, datetime(2000, 1, 1, tzinfo=zone(tz))))
    except CronSimError as err:
        raise FireTimeError("cron", f"{quote(expr)} is not a cron expression ({err})") from None
    except StopIteration:
        raise FireTimeError("cron", f"{quote(expr)} never fires") from None


def times_after(spec: scheduler_pb2.ScheduleSpec, after_ms: int, until_ms: int, limit: int) -> list[int]:
    """Scheduled times t with after_ms < t <= until_ms, oldest first, at most `limit` of them."""
    out: list[int] = []
    for t in _iterate(spec, max(after_ms, spec.start_ms - 1)):
        if t > until_ms or (spec.end_ms and t > spec.end_ms) or len(out) >= limit:
            break
        out.append(t)
    return out


def next_times(spec: scheduler_pb2.ScheduleSpec, after_ms: int, count: int) -> list[int]:
    """The next `count` scheduled times after after_ms (fewer when the schedule ends)."""
    until = spec.end_ms or 2**63
    return times_after(spec, after_ms, until, count)


def _iterate(spec: scheduler_pb2.ScheduleSpec, after_ms: int) -> Iterator[int]:
    if spec.every_ms:
        yield from _interval(spec.every_ms, spec.start_ms, after_ms)
        return
    start = datetime.fromtimestamp(after_ms / 1000, zone(spec.timezone))
    try:
        for when in CronSim(spec.cron, start):
            yield int(when.timestamp()) * 1000
    except (CronSimError, StopIteration):
        return  # validated at create; an expression that ends simply has no more times


def _interval(every: int, anchor: int, after_ms: int) -> Iterator[int]:
    # Invariant: every >= 1 (validated); times are anchor + k * every with k >= 0.
    t = anchor if after_ms < anchor else anchor + ((after_ms - anchor) // every + 1) * every
    while True:
        yield t
        t += every


def jitter(spec: scheduler_pb2.ScheduleSpec, t: int) -> int:
    """A delay in [0, jitter_ms) derived from (name, t): the same on every node, never random."""
    if spec.jitter_ms <= 0:
        return 0
    digest = hashlib.blake2b(f"{spec.name}\0{t}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % spec.jitter_ms


def due(spec: scheduler_pb2.ScheduleSpec, t: int) -> int:
    return t + jitter(spec, t)


def window_ms(spec: scheduler_pb2.ScheduleSpec) -> int:
    return spec.catchup_window_ms or DEFAULT_CATCHUP_WINDOW_MS


def catchup_max(spec: scheduler_pb2.ScheduleSpec) -> int:
    return spec.catchup_max or DEFAULT_CATCHUP_MAX


@dataclass(frozen=True)
class Decision:
    time: int  # the scheduled time
    fire: bool
    reason: str = ""  # why not, when fire is False


@dataclass(frozen=True)
class Plan:
    """What to do now with the undecided times, oldest first, and when to look again."""

    decisions: list[Decision] = field(default_factory=list)
    next_due_ms: int | None = None  # the due moment of the next undecided time; None: no more


def plan(spec: scheduler_pb2.ScheduleSpec, decided_until: int, now: int, *, paused: bool) -> Plan:
    """Decide every scheduled time after `decided_until` that is due by `now`.

    On time (due at most ON_TIME_GRACE_MS ago): fire. Late (a leader was missing): by catch-up
    policy, `skip` fires none (missed); `once` fires the newest late time inside the window;
    `all` fires every late time inside the window, the newest catchup_max of them. Late times
    before the window, or beyond catchup_max, are `outside window`. Paused: every due time is
    skipped as `paused`.
    """
    due_times, next_due, capped = _due_times(spec, decided_until, now)
    late = [t for t in due_times if now - due(spec, t) > ON_TIME_GRACE_MS]
    catchup = set() if capped else _catchup(spec, late, now)
    late_set = set(late)
    out: list[Decision] = []
    for t in due_times:
        if paused:
            out.append(Decision(t, False, PAUSED))
        elif t in catchup or (t not in late_set and not capped):
            out.append(Decision(t, True))
        else:
            out.append(Decision(t, False, _late_reason(spec, t, now)))
    return Plan(out, next_due)


def _due_times(spec: scheduler_pb2.ScheduleSpec, after: int, now: int) -> tuple[list[int], int | None, bool]:
    """Times after `after` that are due by now, in order; stops at the first one not yet due
    (a later time never overtakes an earlier one, whatever their jitters). `capped`: there were
    more than ENUMERATE_LIMIT, so every time in this batch is old news and is only recorded."""
    times = times_after(spec, after, now, ENUMERATE_LIMIT + 1)
    capped = len(times) > ENUMERATE_LIMIT
    out: list[int] = []
    for t in times[:ENUMERATE_LIMIT]:
        if due(spec, t) > now:
            return out, due(spec, t), False
        out.append(t)
    following = next_times(spec, out[-1] if out else after, 1)
    return out, (due(spec, following[0]) if following else None), capped


def _catchup(spec: scheduler_pb2.ScheduleSpec, late: list[int], now: int) -> set[int]:
    inside = [t for t in late if now - t <= window_ms(spec)]
    if spec.catchup == S.CATCHUP_POLICY_ALL:
        return set(inside[-catchup_max(spec):])
    if spec.catchup == S.CATCHUP_POLICY_ONCE:
        return set(inside[-1:])
    return set()


def _late_reason(spec: scheduler_pb2.ScheduleSpec, t: int, now: int) -> str:
    if spec.catchup == S.CATCHUP_POLICY_SKIP:
        return MISSED
    if spec.catchup == S.CATCHUP_POLICY_ONCE and now - t <= window_ms(spec):
        return MISSED  # folded into the one catch-up run
    return OUTSIDE_WINDOW
