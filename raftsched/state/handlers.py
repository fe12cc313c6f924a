"""One handler per command: check that it still applies, then change the model.

A handler never raises on a committed entry. Whatever no longer applies (a stale attempt, an
unknown job or executor, a spec out of its limits) is refused: counted, explained in the
ApplyResult, and nothing else changes. Each check comes before the first change it guards, so a
refused item leaves no half-done transition behind. Batch commands refuse item by item.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from google.protobuf.message import DecodeError

from raftsched.jobstates import TERMINAL
from raftsched.quoting import quote
from raftsched.state import containment, lifecycle, notify, schedules
from raftsched.state.commands import VERSION, decode
from raftsched.state.lifecycle import end_name, state_name
from raftsched.state.model import Model, current_attempt, job_slots, last_attempt_number
from raftsched.state.validate import ValidationError, validate_executor, validate_spec
from raftsched.v1 import admin_pb2, commands_pb2, jobs_pb2, scheduler_pb2

J = jobs_pb2
C = commands_pb2

# gRPC status codes carried in ApplyResult.code / SubmitResult.code.
OK, INVALID_ARGUMENT, NOT_FOUND, FAILED_PRECONDITION = 0, 3, 5, 9
MAX_REASONS = 20  # item refusals spelled out in one result; the rest are only counted

Handler = Callable[[Model, commands_pb2.Command], commands_pb2.ApplyResult]


def apply_command(m: Model, data: bytes) -> commands_pb2.ApplyResult:
    """Decode and apply one committed entry's bytes. Never raises on any input."""
    try:
        cmd = decode(data)
    except DecodeError as err:
        return refuse(m, INVALID_ARGUMENT, f"malformed command: {err}")
    if cmd.version != VERSION:
        reason = f"unknown command version {cmd.version} (this node knows {VERSION})"
        return refuse(m, INVALID_ARGUMENT, reason)
    kind = cmd.WhichOneof("body")
    handler = HANDLERS.get(kind) if kind is not None else None
    if handler is None:
        return refuse(m, INVALID_ARGUMENT, "empty or unknown command body")
    result = handler(m, cmd)
    if m.ended_scheduled:  # a buffer-one firing may be waiting for one of these jobs
        ended, m.ended_scheduled = m.ended_scheduled, []
        schedules.release_buffered(m, ended, cmd.time_ms)
        m.ended_scheduled.clear()
    return result


def refuse(m: Model, code: int, reason: str) -> commands_pb2.ApplyResult:
    m.counters.refused_commands += 1
    return C.ApplyResult(error=reason, code=code)


def job_copy(job: jobs_pb2.Job) -> jobs_pb2.Job:
    out = J.Job()
    out.CopyFrom(job)
    return out


class _Refusals:
    """Collects the refused items of a batch command into one counted, bounded explanation."""

    def __init__(self, m: Model) -> None:
        self._m = m
        self._reasons: list[str] = []
        self._count = 0

    def add(self, what: str, reason: str) -> None:
        self._m.counters.refused_items += 1
        self._count += 1
        if len(self._reasons) < MAX_REASONS:
            self._reasons.append(f"{what}: {reason}")

    def result(self) -> commands_pb2.ApplyResult:
        if not self._count:
            return C.ApplyResult()
        more = f"; and {self._count - len(self._reasons)} more" if self._count > len(self._reasons) else ""
        text = f"refused {self._count} item(s): " + "; ".join(self._reasons) + more
        return C.ApplyResult(error=text, code=FAILED_PRECONDITION, refused_items=self._count)


# --- jobs ---------------------------------------------------------------------------------------


def on_submit(m: Model, cmd: commands_pb2.Command) -> commands_pb2.ApplyResult:
    result = C.ApplyResult()
    if not m.results_wanted:  # a follower: the jobs are made, no copy of them is
        for spec in cmd.submit.specs:
            create_job(m, spec, cmd.time_ms)
        return result
    for spec in cmd.submit.specs:
        _fill(result.submitted.add(), create_job(m, spec, cmd.time_ms))  # add(): built in place, one copy
    return result


def submit_one(m: Model, spec: jobs_pb2.JobSpec, now: int, *, schedule_id: str = "", scheduled_time: int = 0
               ) -> scheduler_pb2.SubmitResult:
    """Create one job (or return the one its idempotency key names). Schedules create theirs here too."""
    return _fill(scheduler_pb2.SubmitResult(),
                 create_job(m, spec, now, schedule_id=schedule_id, scheduled_time=scheduled_time))


Created = tuple[jobs_pb2.Job, bool] | str  # (the job, whether it existed already) or why it was refused


def _fill(out: scheduler_pb2.SubmitResult, created: Created) -> scheduler_pb2.SubmitResult:
    if isinstance(created, str):
        out.error, out.code = created, INVALID_ARGUMENT
    else:
        out.job.CopyFrom(created[0])
        out.existed = created[1]
    return out


def create_job(m: Model, spec: jobs_pb2.JobSpec, now: int, *, schedule_id: str = "", scheduled_time: int = 0,
               ) -> Created:
    """The job `spec` makes (or the one its idempotency key names), or why it is refused."""
    key = spec.idempotency_key
    known = m.idem_lookup(key) if key else None
    existing = m.job(known) if known is not None else None
    if existing is not None:  # SPEC §6.2: one job per key, whatever the second spec says
        return existing, True
    try:
        validate_spec(spec, None)  # handlers were checked by the API; executors may come and go
    except ValidationError as err:
        m.counters.refused_items += 1
        return str(err)
    missing = [dep for dep in spec.depends_on if m.job(dep) is None]
    if missing:
        m.counters.refused_items += 1
        return f"depends_on: unknown job {missing[0]}"
    seq = m.next_seq
    m.next_seq += 1
    state, reason = lifecycle.initial_state(m, spec)
    job = J.Job(id=f"j{seq}", spec=spec, state=state, state_reason=reason, seq=seq,  # type: ignore[arg-type]
                schedule_id=schedule_id, scheduled_time=scheduled_time)
    job.submitted_ms = job.updated_ms = now
    m.add_job(job)
    if key:
        m.put_idem(key, job.id, now)
    return job, False


def on_cancel(m: Model, cmd: commands_pb2.Command) -> commands_pb2.ApplyResult:
    """Cancel a job; the result's last attempt tells the caller which executor must kill what."""
    job = m.job(cmd.cancel.job_id)
    if job is None:
        return refuse(m, NOT_FOUND, f"job {quote(cmd.cancel.job_id)} not found")
    if job.state not in TERMINAL:  # a terminal job is returned as it is: cancel is idempotent
        lifecycle.cancel(m, job, cmd.time_ms, cmd.cancel.reason)
    return C.ApplyResult(job=job)  # the constructor copies


# --- attempts -----------------------------------------------------------------------------------


def on_assign(m: Model, cmd: commands_pb2.Command) -> commands_pb2.ApplyResult:
    refusals = _Refusals(m)
    for item in cmd.assign.items:
        reason = _assign_one(m, item, cmd.time_ms)
        if reason:
            refusals.add(f"{item.job_id}/{item.attempt}", reason)
    return refusals.result()


def _assign_one(m: Model, item: commands_pb2.AssignItem, now: int) -> str:
    job = m.job(item.job_id)
    if job is None:
        return "unknown job"
    if job.state != J.JOB_STATE_QUEUED:
        return f"job is {state_name(job.state)}"
    if item.attempt != last_attempt_number(job) + 1:
        return f"attempt numbers only grow by one: expected {last_attempt_number(job) + 1}"
    if job.not_before_ms > now:
        return f"in retry backoff until {job.not_before_ms}"
    executor = m.executors.get(item.executor)
    if executor is None:
        return f"unknown executor {quote(item.executor)}"
    if executor.state != J.EXECUTOR_STATE_CONNECTED:  # DRAINING receives no new work, DOWN none
        return f"executor {item.executor} is {J.ExecutorState.Name(executor.state)}"
    if m.slots_in_use(executor.id) + job_slots(job) > executor.slots:
        return f"executor {item.executor} has not enough free slots"
    attempt = m.begin_attempt(job, executor.id, now)
    m.set_state(job, J.JOB_STATE_ASSIGNED, now, f"attempt {attempt.number} on {executor.id}")
    return ""


def on_started(m: Model, cmd: commands_pb2.Command) -> commands_pb2.ApplyResult:
    refusals = _Refusals(m)
    _start_all(m, cmd.started.items, cmd.started.executor, cmd.time_ms, refusals)
    return refusals.result()


def _start_all(m: Model, refs: Iterable[jobs_pb2.AttemptRef], executor: str, now: int,
               refusals: _Refusals) -> None:
    for ref in refs:
        job = m.job(ref.job_id)
        attempt = current_attempt(job) if job is not None else None
        if job is None or attempt is None or attempt.number != ref.attempt:
            refusals.add(f"{ref.job_id}/{ref.attempt}", "not the current attempt")
        elif executor and attempt.executor != executor:
            refusals.add(f"{ref.job_id}/{ref.attempt}", f"the attempt belongs to {attempt.executor}")
        elif job.state != J.JOB_STATE_ASSIGNED:
            refusals.add(f"{ref.job_id}/{ref.attempt}", f"job is {state_name(job.state)}")
        else:
            m.start_attempt(job, attempt, now)
            reason = f"attempt {attempt.number} on {attempt.executor}"
            m.set_state(job, J.JOB_STATE_RUNNING, now, reason)


RESULT_ENDS = frozenset(
    {J.ATTEMPT_END_SUCCEEDED, J.ATTEMPT_END_FAILED, J.ATTEMPT_END_TIMED_OUT, J.ATTEMPT_END_FENCED,
     J.ATTEMPT_END_CANCELLED}
)


def on_finished(m: Model, cmd: commands_pb2.Command) -> commands_pb2.ApplyResult:
    """The starts it carries first (each as on_started), then the results."""
    refusals = _Refusals(m)
    _start_all(m, cmd.finished.started, cmd.finished.executor, cmd.time_ms, refusals)
    for item in cmd.finished.items:
        reason = _finish_one(m, item, cmd.finished.executor, cmd.time_ms)
        if reason:
            refusals.add(f"{item.job_id}/{item.attempt}", reason)
    return refusals.result()


def _finish_one(m: Model, item: commands_pb2.FinishedItem, executor: str, now: int) -> str:
    job = m.job(item.job_id)
    if job is None:
        return "unknown job"
    if item.end not in RESULT_ENDS:
        return f"{end_name(item.end)} is not a result an executor reports"
    if _is_late_cancel_report(job, item):
        m.touch(job)
        lifecycle.record_outcome(job.attempts[-1], item.exit_code, item.error, item.output_tail)
        return ""
    attempt = current_attempt(job)
    if attempt is None or attempt.number != item.attempt or (executor and attempt.executor != executor):
        # SPEC §6.4: the fencing token does not match; record it, change nothing else.
        m.touch(job)
        job.stale_results_refused = min(job.stale_results_refused + 1, 2**32 - 1)  # a uint32 field
        m.counters.stale_results_refused += 1
        return f"stale result (current attempt {last_attempt_number(job)}, {state_name(job.state)})"
    m.touch(job)
    lifecycle.record_outcome(attempt, item.exit_code, item.error, item.output_tail)
    m.end_attempt(job, attempt, item.end, now)
    containment.record_result(m, attempt.executor, item.end, now)
    if item.end == J.ATTEMPT_END_FENCED:
        notify.emit(m, notify.ATTEMPT_FENCED, now, lifecycle.attempt_event(job, attempt))
    if item.end == J.ATTEMPT_END_SUCCEEDED:
        lifecycle.succeed(m, job, now)
    else:
        lifecycle.retry_or_fail(m, job, item.end, now)
    return ""


def _is_late_cancel_report(job: jobs_pb2.Job, item: commands_pb2.FinishedItem) -> bool:
    """The executor reporting on the attempt a cancel already ended: expected, not stale."""
    last = job.attempts[-1] if job.attempts else None
    return (
        job.state == J.JOB_STATE_CANCELLED
        and last is not None
        and last.number == item.attempt
        and last.end == J.ATTEMPT_END_CANCELLED
    )


def on_timed_out(m: Model, cmd: commands_pb2.Command) -> commands_pb2.ApplyResult:
    refusals = _Refusals(m)
    for ref in cmd.timed_out.items:
        job = m.job(ref.job_id)
        attempt = current_attempt(job) if job is not None else None
        deadline = m.deadline_of.get(job.seq) if job is not None else None
        if job is None or attempt is None or attempt.number != ref.attempt:
            refusals.add(f"{ref.job_id}/{ref.attempt}", "not the current attempt")
        elif deadline is None or deadline[0] > cmd.time_ms:
            # A start committed after the leader looked may have moved the deadline later.
            refusals.add(f"{ref.job_id}/{ref.attempt}", "its deadline has not passed")
        else:
            m.touch(job)
            attempt.error = f"timed out after {job.spec.timeout_ms} ms"
            m.end_attempt(job, attempt, J.ATTEMPT_END_TIMED_OUT, cmd.time_ms)
            if attempt.started_ms:  # a run that never started is not held against the executor
                containment.record_result(m, attempt.executor, J.ATTEMPT_END_TIMED_OUT, cmd.time_ms)
            notify.emit(m, notify.ATTEMPT_TIMED_OUT, cmd.time_ms, lifecycle.attempt_event(job, attempt))
            lifecycle.retry_or_fail(m, job, J.ATTEMPT_END_TIMED_OUT, cmd.time_ms)
    return refusals.result()


# --- executors ----------------------------------------------------------------------------------


def on_executor_up(m: Model, cmd: commands_pb2.Command) -> commands_pb2.ApplyResult:
    """Register or refresh an executor. Its current attempts are kept (SPEC §6.10: no re-runs).

    The leader checked the registration before proposing it; a committed one out of the limits
    (a leader that did not check, or a forged entry) is refused here all the same (issue 14)."""
    up = cmd.executor_up
    try:
        validate_executor(up.executor_id, up.slots, up.labels, up.handlers)
    except ValidationError as err:
        return refuse(m, INVALID_ARGUMENT, f"executor_up: {err}")
    old = m.executors.get(up.executor_id)
    info = J.ExecutorInfo(
        id=up.executor_id,
        state=containment.state_after_up(old, cmd.time_ms),  # type: ignore[arg-type]
        slots=up.slots,
        labels=dict(up.labels),
        handlers=sorted(set(up.handlers)),
        registered_ms=cmd.time_ms,
    )
    containment.carry_facts(old, info)
    m.put_executor(info)
    return C.ApplyResult()


def on_executor_down(m: Model, cmd: commands_pb2.Command) -> commands_pb2.ApplyResult:
    """Every attempt on the executor is lost and re-queued at once (no backoff; it still counts)."""
    down = cmd.executor_down
    executor = m.executors.get(down.executor_id)
    if executor is None:
        return refuse(m, NOT_FOUND, f"executor {quote(down.executor_id)} not found")
    lost = sorted(m.on_executor.get(executor.id, {}), key=lambda job_id: m.active[job_id].seq)
    if executor.state != J.EXECUTOR_STATE_DOWN:
        notify.emit(m, notify.EXECUTOR_DOWN, cmd.time_ms, {
            "executor": executor.id, "reason": notify.text(down.reason), "lost_attempts": len(lost),
            "lost_jobs": lost[:MAX_REASONS]})
    for job_id in lost:
        job = m.active[job_id]
        attempt = current_attempt(job)
        assert attempt is not None and attempt.executor == executor.id, "on_executor index drifted"
        m.touch(job)
        attempt.error = f"executor {executor.id} down" + (f": {down.reason}" if down.reason else "")
        m.end_attempt(job, attempt, J.ATTEMPT_END_EXECUTOR_LOST, cmd.time_ms)
        if containment.is_poison(job, down.poison_after):
            containment.fail_as_poison(m, job, cmd.time_ms)
        else:
            lifecycle.retry_or_fail(m, job, J.ATTEMPT_END_EXECUTOR_LOST, cmd.time_ms, backoff=False)
    executor.state = J.EXECUTOR_STATE_DOWN
    m.put_executor(executor)
    return C.ApplyResult()


def on_drain(m: Model, cmd: commands_pb2.Command) -> commands_pb2.ApplyResult:
    executor = m.executors.get(cmd.drain.executor_id)
    if executor is None:
        return refuse(m, NOT_FOUND, f"executor {quote(cmd.drain.executor_id)} not found")
    if executor.state == J.EXECUTOR_STATE_DOWN:
        return refuse(m, FAILED_PRECONDITION, f"executor {executor.id} is down")
    executor.state = J.EXECUTOR_STATE_DRAINING
    m.put_executor(executor)
    return C.ApplyResult()


# --- history -------------------------------------------------------------------------------------

MAX_PURGE_ITEMS = 1000  # job ids, keys and trims in one PurgeCmd (SPEC §5: bounded batches)


def on_purge(m: Model, cmd: commands_pb2.Command) -> commands_pb2.ApplyResult:
    """Forget finished jobs, idempotency keys and old skipped-fire records the leader chose.

    The leader decided by its clock and the retention settings; apply decides only what is safe,
    from replicated state: a job must be finished and no live job may depend on it.
    """
    purge = cmd.purge
    if max(len(purge.job_ids), len(purge.idempotency_keys), len(purge.trim_skipped)) > MAX_PURGE_ITEMS:
        return refuse(m, INVALID_ARGUMENT, f"purge: at most {MAX_PURGE_ITEMS} items of each kind")
    refusals = _Refusals(m)
    for job_id in purge.job_ids:
        reason = _purge_one(m, job_id)
        if reason:
            refusals.add(job_id, reason)
    for key in purge.idempotency_keys:
        m.forget_key(key)
    for trim in purge.trim_skipped:
        schedules.trim_skipped(m, trim.schedule, trim.before_ms)
    return refusals.result()


def _purge_one(m: Model, job_id: str) -> str:
    job = m.job(job_id)
    if job is None:
        return "unknown job"  # purged already (a repeated proposal): harmless
    if job.state not in TERMINAL:
        return f"job is {state_name(job.state)}"
    if m.is_held(job_id):
        return "a live job depends on it"
    m.delete_job(job)
    m.counters.jobs_purged += 1
    return ""


# --- the corruption check (SPEC §6 promise 15) ----------------------------------------------------

ALARM_NAMES = frozenset({"CORRUPT"})
MAX_ALARM_NODE = 128


def on_check_hash(m: Model, cmd: commands_pb2.Command) -> commands_pb2.ApplyResult:
    """Every node hashes its stored state right after this entry (see SchedulerState.apply)."""
    m.hash_points.append(cmd.check_hash.check_id)
    return C.ApplyResult()


def on_alarm(m: Model, cmd: commands_pb2.Command) -> commands_pb2.ApplyResult:
    alarm = cmd.alarm
    if alarm.alarm not in ALARM_NAMES:
        return refuse(m, INVALID_ARGUMENT, f"alarm: unknown alarm {quote(alarm.alarm)}")
    if not alarm.node or len(alarm.node) > MAX_ALARM_NODE:
        return refuse(m, INVALID_ARGUMENT, "node: 1..128 characters")
    if not alarm.active:
        m.set_alarm(None, alarm.node, alarm.alarm)
        return C.ApplyResult()
    raised = m.alarms.get((alarm.node, alarm.alarm))
    record = admin_pb2.Alarm(node=alarm.node, alarm=alarm.alarm, reason=alarm.reason[:300],
                             raised_ms=raised.raised_ms if raised is not None else cmd.time_ms)
    m.set_alarm(record, alarm.node, alarm.alarm)
    return C.ApplyResult()


HANDLERS: dict[str, Handler] = {
    "submit": on_submit,
    "cancel": on_cancel,
    "assign": on_assign,
    "started": on_started,
    "finished": on_finished,
    "timed_out": on_timed_out,
    "executor_up": on_executor_up,
    "executor_down": on_executor_down,
    "drain": on_drain,
    "create_schedule": schedules.on_create,
    "pause_schedule": schedules.on_pause,
    "delete_schedule": schedules.on_delete,
    "fire_schedule": schedules.on_fire,
    "skip_fires": schedules.on_skip,
    "release_buffered": schedules.on_release_buffered,
    "purge": on_purge,
    "check_hash": on_check_hash,
    "alarm": on_alarm,
    "notify_add": notify.on_add,
    "notify_remove": notify.on_remove,
    "notify_test": notify.on_test,
    "notify_ack": notify.on_ack,
    "leader_changed": notify.on_leader_changed,
    "quarantine": containment.on_quarantine,
    "release": containment.on_release,
}
