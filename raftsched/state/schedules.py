"""Schedules in the state machine: validation, and the deterministic handlers of the five commands.

Promise 11 rests on one rule enforced here: every scheduled time of a schedule is decided at most
once. `decided_until(schedule)` is the newest scheduled time fired or skipped; a FireScheduleCmd or
SkipFiresCmd for a time at or below it changes nothing. Times are decided in order (the leader
plans oldest first), so the watermark is all the memory this needs. A manual trigger carries its
own time (the leader's clock), is recorded as manual, and leaves the watermark alone.

A firing creates one job from the template with schedule_id (the schedule's name),
scheduled_time, and the idempotency key `schedule/NAME@CREATED/TIME`, so even the job creation
is idempotent. Overlap policies are decided here from the state of the schedule's last job:

    allow         fire
    skip          the last job is not terminal: record the time as skipped (overlap)
    buffer-one    the last job is not terminal: the time waits (`buffered`); it fires when that job
                  ends, or, when that is before the time was due by the ending entry's stamp, once
                  the leader's clock reaches it (`release_when_due`, ReleaseBufferedCmd). A newer
                  time replaces a waiting one, which is recorded as skipped (overlap)
    cancel-other  the last job is not terminal: cancel it, then fire
"""

from __future__ import annotations

import re
from collections.abc import Set as AbstractSet

from raftsched.jobstates import TERMINAL
from raftsched.quoting import quote
from raftsched.state import firetimes, lifecycle, notify
from raftsched.state.firetimes import OVERLAP, PAUSED, FireTimeError
from raftsched.state.model import Model, clamp_u64
from raftsched.state.validate import ValidationError, validate_spec
from raftsched.v1 import commands_pb2, jobs_pb2, scheduler_pb2

S = scheduler_pb2
C = commands_pb2
J = jobs_pb2

NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
MIN_EVERY_MS = 1000
MAX_EVERY_MS = 366 * 86_400_000
MAX_JITTER_MS = 3_600_000
MAX_CATCHUP_WINDOW_MS = 7 * 86_400_000
MAX_CATCHUP_MAX = 1000
MAX_CRON_CHARS = 200
MAX_KEEP = 1_000_000
SKIPPED_KEPT = 100  # the most recent skipped times kept in the record; all are counted
MAX_SKIPS_PER_CMD = 1000
REASONS = frozenset({firetimes.MISSED, OVERLAP, PAUSED, firetimes.OUTSIDE_WINDOW})
OK, INVALID_ARGUMENT, NOT_FOUND, ALREADY_EXISTS, FAILED_PRECONDITION = 0, 3, 5, 6, 9


# --- validation (the API before proposing, apply again on the committed entry) --------------------


def validate_schedule(spec: scheduler_pb2.ScheduleSpec, known_handlers: AbstractSet[str] | None) -> None:
    """Raise ValidationError naming the first bad field."""
    if not NAME_RE.fullmatch(spec.name):
        raise ValidationError("name", "1..100 characters of [A-Za-z0-9._-], starting with a letter or digit")
    _check_when(spec)
    _check_limits(spec)
    _check_template(spec.template, known_handlers)


def _check_when(spec: scheduler_pb2.ScheduleSpec) -> None:
    if bool(spec.cron) == bool(spec.every_ms):
        raise ValidationError("cron", "give exactly one of cron and every_ms")
    if spec.every_ms:
        if spec.timezone:
            raise ValidationError("timezone", "applies to cron only")
        if not MIN_EVERY_MS <= spec.every_ms <= MAX_EVERY_MS:
            raise ValidationError("every_ms", f"{spec.every_ms} ms: the interval must be 1 s .. 366 days")
        return
    if len(spec.cron) > MAX_CRON_CHARS:
        raise ValidationError("cron", f"at most {MAX_CRON_CHARS} characters")
    try:
        firetimes.zone(spec.timezone)
        firetimes.check_cron(spec.cron, spec.timezone)
    except FireTimeError as err:
        raise ValidationError(err.field, str(err).split(": ", 1)[1]) from None


def _check_limits(spec: scheduler_pb2.ScheduleSpec) -> None:
    if spec.end_ms and spec.end_ms <= spec.start_ms:
        raise ValidationError("end_ms", "must be after start_ms")
    if spec.jitter_ms > MAX_JITTER_MS or (spec.every_ms and spec.jitter_ms >= spec.every_ms):
        raise ValidationError("jitter_ms", "at most 1 h, and shorter than the interval")
    if spec.catchup_window_ms > MAX_CATCHUP_WINDOW_MS:
        raise ValidationError("catchup_window_ms", "at most 7 days (0 means 1 h)")
    if spec.catchup_max > MAX_CATCHUP_MAX:
        raise ValidationError("catchup_max", f"at most {MAX_CATCHUP_MAX} (0 means 100)")
    if spec.keep_succeeded > MAX_KEEP or spec.keep_failed > MAX_KEEP:
        raise ValidationError("keep_succeeded" if spec.keep_succeeded > MAX_KEEP else "keep_failed",
                              f"at most {MAX_KEEP} (0 keeps every job until the retention period ends)")
    if spec.overlap not in S.OverlapPolicy.values():
        raise ValidationError("overlap", f"unknown overlap policy {spec.overlap}")
    if spec.catchup not in S.CatchupPolicy.values():
        raise ValidationError("catchup", f"unknown catch-up policy {spec.catchup}")


def _check_template(template: jobs_pb2.JobSpec, known_handlers: AbstractSet[str] | None) -> None:
    try:
        validate_spec(template, known_handlers)
    except ValidationError as err:
        raise ValidationError(f"template.{err.field}", err.message) from None
    if template.depends_on:
        raise ValidationError("template.depends_on", "a scheduled job cannot depend on fixed job ids")
    if template.idempotency_key:
        raise ValidationError("template.idempotency_key", "derived from the schedule and time: leave it empty")


# --- reading a record --------------------------------------------------------------------------


def decided_until(schedule: scheduler_pb2.Schedule) -> int:
    """The newest scheduled time fired or skipped (0: none yet). Skipped times are appended in
    time order and the newest is always kept, so the record itself holds the watermark."""
    skipped = schedule.skipped[-1].scheduled_time if schedule.skipped else 0
    return max(schedule.last_fired_time, schedule.last_skipped_time, skipped, schedule.created_ms)


def job_key(schedule: scheduler_pb2.Schedule, t: int, *, manual: bool = False) -> str:
    kind = "manual/" if manual else ""
    return f"schedule/{schedule.id}@{schedule.created_ms}/{kind}{t}"


def _copy(schedule: scheduler_pb2.Schedule) -> scheduler_pb2.Schedule:
    out = S.Schedule()
    out.CopyFrom(schedule)
    return out


# --- handlers ----------------------------------------------------------------------------------


def on_create(m: Model, cmd: commands_pb2.Command) -> commands_pb2.ApplyResult:
    spec = cmd.create_schedule.spec
    try:
        validate_schedule(spec, None)
    except ValidationError as err:
        return _refuse(m, INVALID_ARGUMENT, str(err))
    if spec.name in m.schedules:
        return _refuse(m, ALREADY_EXISTS, f"name: a schedule named {quote(spec.name)} exists")
    schedule = S.Schedule(id=spec.name, spec=spec, created_ms=clamp_u64(cmd.time_ms))
    m.put_schedule(schedule)
    return C.ApplyResult(schedule=_copy(schedule))


def on_pause(m: Model, cmd: commands_pb2.Command) -> commands_pb2.ApplyResult:
    schedule = m.schedules.get(cmd.pause_schedule.name)
    if schedule is None:
        return _refuse(m, NOT_FOUND, f"no schedule named {quote(cmd.pause_schedule.name)}")
    schedule.paused = cmd.pause_schedule.paused
    schedule.note = cmd.pause_schedule.note[:200] if schedule.paused else ""
    m.put_schedule(schedule)
    return C.ApplyResult(schedule=_copy(schedule))


def on_delete(m: Model, cmd: commands_pb2.Command) -> commands_pb2.ApplyResult:
    """Delete the schedule; its jobs stay (and keep their schedule_id)."""
    if cmd.delete_schedule.name not in m.schedules:
        return _refuse(m, NOT_FOUND, f"no schedule named {quote(cmd.delete_schedule.name)}")
    m.delete_schedule(cmd.delete_schedule.name)
    return C.ApplyResult()


def on_fire(m: Model, cmd: commands_pb2.Command) -> commands_pb2.ApplyResult:
    fire = cmd.fire_schedule
    schedule = m.schedules.get(fire.name)
    if schedule is None:
        return _refuse(m, NOT_FOUND, f"no schedule named {quote(fire.name)}")
    if fire.manual:
        job = _create_job(m, schedule, fire.scheduled_time, cmd.time_ms, manual=True)
        return C.ApplyResult(job=job, schedule=_copy(schedule))
    if fire.scheduled_time <= decided_until(schedule):
        # Promise 11: a time fired (or skipped) before is never fired again. Expected when a new
        # leader retries a firing that did commit: not counted as a refusal, nothing changes.
        reason = f"scheduled time {fire.scheduled_time} is already decided (up to {decided_until(schedule)})"
        return C.ApplyResult(error=reason, code=FAILED_PRECONDITION, schedule=_copy(schedule))
    if schedule.paused:
        _record_skip(m, schedule, fire.scheduled_time, PAUSED, cmd.time_ms)
        return C.ApplyResult(schedule=_copy(schedule))
    job = _fire_with_overlap(m, schedule, fire.scheduled_time, cmd.time_ms, fire.release_when_due)
    return C.ApplyResult(job=job, schedule=_copy(schedule))


def _fire_with_overlap(m: Model, schedule: scheduler_pb2.Schedule, t: int, now: int,
                       release_when_due: bool = False) -> jobs_pb2.Job | None:
    last = m.job(schedule.last_job_id) if schedule.last_job_id else None
    running = last is not None and last.state not in TERMINAL
    if schedule.buffered and not running:
        # A time waiting for the leader's release (its job ended before it was due): it is older,
        # and due now that a newer time is, so it fires first and the newer one overlaps it.
        last = _release(m, schedule, now)
        running = last is not None
    policy = schedule.spec.overlap
    if running and policy == S.OVERLAP_POLICY_SKIP:
        _record_skip(m, schedule, t, OVERLAP, now)
        return None
    if running and policy == S.OVERLAP_POLICY_BUFFER_ONE:
        if schedule.buffered:  # the waiting time gives way to the newer one
            _record_skip(m, schedule, schedule.last_fired_time, OVERLAP, now, keep_order=False)
        schedule.buffered = True
        schedule.release_when_due = release_when_due
        schedule.last_fired_time = t
        m.put_schedule(schedule)
        return None
    if running and policy == S.OVERLAP_POLICY_CANCEL_OTHER:
        assert last is not None
        lifecycle.cancel(m, last, now, f"cancelled by schedule {schedule.id} (overlap cancel-other)")
    schedule.last_fired_time = t
    return _create_job(m, schedule, t, now)


def release_buffered(m: Model, ended: list[str], now: int) -> None:
    """After a command: a buffer-one time waiting for a job that just ended fires now, unless it
    is not due yet by this entry's stamp and was buffered `release_when_due`: the entry's leader
    may run behind the one that fired the time, and the job would start before its time. The
    leader then proposes its release once due by its own clock (`on_release_buffered`)."""
    for job_id in ended:
        job = m.job(job_id)
        schedule = m.schedules.get(job.schedule_id) if job is not None else None
        if schedule is not None and schedule.buffered and schedule.last_job_id == job_id:
            if schedule.release_when_due and now < firetimes.due(schedule.spec, schedule.last_fired_time):
                continue
            _release(m, schedule, now)


def _release(m: Model, schedule: scheduler_pb2.Schedule, now: int) -> jobs_pb2.Job | None:
    schedule.buffered = False
    schedule.release_when_due = False
    return _create_job(m, schedule, schedule.last_fired_time, now)


def on_release_buffered(m: Model, cmd: commands_pb2.Command) -> commands_pb2.ApplyResult:
    """The leader's release of a buffered time whose blocking job ended before the time was due.
    Anything else (released already, replaced by a newer time, its job not ended) changes nothing:
    expected when a new leader repeats a release that did commit, so not counted as a refusal."""
    release = cmd.release_buffered
    schedule = m.schedules.get(release.name)
    if schedule is None:
        return _refuse(m, NOT_FOUND, f"no schedule named {quote(release.name)}")
    last = m.job(schedule.last_job_id) if schedule.last_job_id else None
    if not schedule.buffered or schedule.last_fired_time != release.scheduled_time:
        reason = f"scheduled time {release.scheduled_time} is not the one buffered"
        return C.ApplyResult(error=reason, code=FAILED_PRECONDITION, schedule=_copy(schedule))
    if last is not None and last.state not in TERMINAL:
        reason = f"job {last.id} of schedule {schedule.id} has not ended"
        return C.ApplyResult(error=reason, code=FAILED_PRECONDITION, schedule=_copy(schedule))
    job = _release(m, schedule, cmd.time_ms)
    return C.ApplyResult(job=job, schedule=_copy(schedule))


def release_due(schedule: scheduler_pb2.Schedule, last_job_ended: bool) -> int | None:
    """The due moment of a buffered time waiting for the leader's release (its blocking job
    ended before it was due), or None when there is none."""
    if schedule.buffered and schedule.release_when_due and last_job_ended:
        return firetimes.due(schedule.spec, schedule.last_fired_time)
    return None


def on_skip(m: Model, cmd: commands_pb2.Command) -> commands_pb2.ApplyResult:
    """Record times the leader decided not to fire; times already decided are left alone."""
    skip = cmd.skip_fires
    schedule = m.schedules.get(skip.name)
    if schedule is None:
        return _refuse(m, NOT_FOUND, f"no schedule named {quote(skip.name)}")
    if len(skip.fires) > MAX_SKIPS_PER_CMD:
        return _refuse(m, INVALID_ARGUMENT, f"fires: at most {MAX_SKIPS_PER_CMD} per command")
    for fire in skip.fires:
        if fire.scheduled_time > decided_until(schedule):
            reason = fire.reason if fire.reason in REASONS else firetimes.MISSED
            _record_skip(m, schedule, fire.scheduled_time, reason, cmd.time_ms)
    return C.ApplyResult(schedule=_copy(schedule))


def _record_skip(m: Model, schedule: scheduler_pb2.Schedule, t: int, reason: str, now: int, *,
                 keep_order: bool = True) -> None:
    """Append a skipped time (bounded: the oldest records go, the count stays) and make its
    schedule.skipped event.

    `keep_order=False` is for a buffered time given up: it is older than the watermark already,
    so it goes just before the newest record to keep the newest time last.
    """
    item = S.SkippedFire(scheduled_time=t, reason=reason)
    if keep_order or not schedule.skipped or schedule.skipped[-1].scheduled_time < t:
        schedule.skipped.append(item)
    else:
        schedule.skipped.insert(len(schedule.skipped) - 1, item)
    if len(schedule.skipped) > SKIPPED_KEPT:
        del schedule.skipped[: len(schedule.skipped) - SKIPPED_KEPT]
    schedule.last_skipped_time = max(schedule.last_skipped_time, t)
    schedule.skipped_count += 1
    m.put_schedule(schedule)
    notify.emit(m, notify.SCHEDULE_SKIPPED, now, {"schedule": schedule.id, "scheduled_time": t, "reason": reason})


def trim_skipped(m: Model, name: str, before_ms: int) -> None:
    """Forget skipped-fire records older than `before_ms` (retention); the watermark and the
    count stay (`last_skipped_time`, `skipped_count`)."""
    schedule = m.schedules.get(name)
    if schedule is None:
        return
    keep = [item for item in schedule.skipped if item.scheduled_time >= before_ms]
    if len(keep) != len(schedule.skipped):
        del schedule.skipped[:]
        schedule.skipped.extend(keep)
        m.put_schedule(schedule)


def _create_job(m: Model, schedule: scheduler_pb2.Schedule, t: int, now: int, *, manual: bool = False
                ) -> jobs_pb2.Job | None:
    # Imported here: handlers imports this module for its dispatch table.
    from raftsched.state.handlers import submit_one

    spec = J.JobSpec()
    spec.CopyFrom(schedule.spec.template)
    spec.idempotency_key = job_key(schedule, t, manual=manual)
    result = submit_one(m, spec, now, schedule_id=schedule.id, scheduled_time=t)
    if result.error:
        return None  # refused (counted) in submit_one; the time stays decided
    schedule.fired_count += 0 if result.existed else 1
    schedule.last_job_id = result.job.id
    m.put_schedule(schedule)
    return result.job


def _refuse(m: Model, code: int, reason: str) -> commands_pb2.ApplyResult:
    m.counters.refused_commands += 1
    return C.ApplyResult(error=reason, code=code)
