from raftsched.v1 import jobs_pb2 as _jobs_pb2
from raftsched.v1 import scheduler_pb2 as _scheduler_pb2
from raftsched.v1 import notify_pb2 as _notify_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Command(_message.Message):
    __slots__ = ("version", "time_ms", "submit", "cancel", "assign", "started", "finished", "timed_out", "executor_up", "executor_down", "drain", "create_schedule", "pause_schedule", "delete_schedule", "fire_schedule", "skip_fires", "purge", "check_hash", "alarm", "notify_add", "notify_remove", "notify_test", "notify_ack", "leader_changed", "quarantine", "release", "release_buffered")
    VERSION_FIELD_NUMBER: _ClassVar[int]
    TIME_MS_FIELD_NUMBER: _ClassVar[int]
    SUBMIT_FIELD_NUMBER: _ClassVar[int]
    CANCEL_FIELD_NUMBER: _ClassVar[int]
    ASSIGN_FIELD_NUMBER: _ClassVar[int]
    STARTED_FIELD_NUMBER: _ClassVar[int]
    FINISHED_FIELD_NUMBER: _ClassVar[int]
    TIMED_OUT_FIELD_NUMBER: _ClassVar[int]
    EXECUTOR_UP_FIELD_NUMBER: _ClassVar[int]
    EXECUTOR_DOWN_FIELD_NUMBER: _ClassVar[int]
    DRAIN_FIELD_NUMBER: _ClassVar[int]
    CREATE_SCHEDULE_FIELD_NUMBER: _ClassVar[int]
    PAUSE_SCHEDULE_FIELD_NUMBER: _ClassVar[int]
    DELETE_SCHEDULE_FIELD_NUMBER: _ClassVar[int]
    FIRE_SCHEDULE_FIELD_NUMBER: _ClassVar[int]
    SKIP_FIRES_FIELD_NUMBER: _ClassVar[int]
    PURGE_FIELD_NUMBER: _ClassVar[int]
    CHECK_HASH_FIELD_NUMBER: _ClassVar[int]
    ALARM_FIELD_NUMBER: _ClassVar[int]
    NOTIFY_ADD_FIELD_NUMBER: _ClassVar[int]
    NOTIFY_REMOVE_FIELD_NUMBER: _ClassVar[int]
    NOTIFY_TEST_FIELD_NUMBER: _ClassVar[int]
    NOTIFY_ACK_FIELD_NUMBER: _ClassVar[int]
    LEADER_CHANGED_FIELD_NUMBER: _ClassVar[int]
    QUARANTINE_FIELD_NUMBER: _ClassVar[int]
    RELEASE_FIELD_NUMBER: _ClassVar[int]
    RELEASE_BUFFERED_FIELD_NUMBER: _ClassVar[int]
    version: int
    time_ms: int
    submit: SubmitJobsCmd
    cancel: CancelJobCmd
    assign: AssignCmd
    started: AttemptsStartedCmd
    finished: AttemptsFinishedCmd
    timed_out: AttemptTimedOutCmd
    executor_up: ExecutorUpCmd
    executor_down: ExecutorDownCmd
    drain: DrainExecutorCmd
    create_schedule: CreateScheduleCmd
    pause_schedule: PauseScheduleCmd
    delete_schedule: DeleteScheduleCmd
    fire_schedule: FireScheduleCmd
    skip_fires: SkipFiresCmd
    purge: PurgeCmd
    check_hash: CheckHashCmd
    alarm: AlarmCmd
    notify_add: NotifyAddCmd
    notify_remove: NotifyRemoveCmd
    notify_test: NotifyTestCmd
    notify_ack: NotifyAckCmd
    leader_changed: LeaderChangedCmd
    quarantine: QuarantineExecutorCmd
    release: ReleaseExecutorCmd
    release_buffered: ReleaseBufferedCmd
    def __init__(self, version: _Optional[int] = ..., time_ms: _Optional[int] = ..., submit: _Optional[_Union[SubmitJobsCmd, _Mapping]] = ..., cancel: _Optional[_Union[CancelJobCmd, _Mapping]] = ..., assign: _Optional[_Union[AssignCmd, _Mapping]] = ..., started: _Optional[_Union[AttemptsStartedCmd, _Mapping]] = ..., finished: _Optional[_Union[AttemptsFinishedCmd, _Mapping]] = ..., timed_out: _Optional[_Union[AttemptTimedOutCmd, _Mapping]] = ..., executor_up: _Optional[_Union[ExecutorUpCmd, _Mapping]] = ..., executor_down: _Optional[_Union[ExecutorDownCmd, _Mapping]] = ..., drain: _Optional[_Union[DrainExecutorCmd, _Mapping]] = ..., create_schedule: _Optional[_Union[CreateScheduleCmd, _Mapping]] = ..., pause_schedule: _Optional[_Union[PauseScheduleCmd, _Mapping]] = ..., delete_schedule: _Optional[_Union[DeleteScheduleCmd, _Mapping]] = ..., fire_schedule: _Optional[_Union[FireScheduleCmd, _Mapping]] = ..., skip_fires: _Optional[_Union[SkipFiresCmd, _Mapping]] = ..., purge: _Optional[_Union[PurgeCmd, _Mapping]] = ..., check_hash: _Optional[_Union[CheckHashCmd, _Mapping]] = ..., alarm: _Optional[_Union[AlarmCmd, _Mapping]] = ..., notify_add: _Optional[_Union[NotifyAddCmd, _Mapping]] = ..., notify_remove: _Optional[_Union[NotifyRemoveCmd, _Mapping]] = ..., notify_test: _Optional[_Union[NotifyTestCmd, _Mapping]] = ..., notify_ack: _Optional[_Union[NotifyAckCmd, _Mapping]] = ..., leader_changed: _Optional[_Union[LeaderChangedCmd, _Mapping]] = ..., quarantine: _Optional[_Union[QuarantineExecutorCmd, _Mapping]] = ..., release: _Optional[_Union[ReleaseExecutorCmd, _Mapping]] = ..., release_buffered: _Optional[_Union[ReleaseBufferedCmd, _Mapping]] = ...) -> None: ...

class SubmitJobsCmd(_message.Message):
    __slots__ = ("specs",)
    SPECS_FIELD_NUMBER: _ClassVar[int]
    specs: _containers.RepeatedCompositeFieldContainer[_jobs_pb2.JobSpec]
    def __init__(self, specs: _Optional[_Iterable[_Union[_jobs_pb2.JobSpec, _Mapping]]] = ...) -> None: ...

class CancelJobCmd(_message.Message):
    __slots__ = ("job_id", "reason")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    reason: str
    def __init__(self, job_id: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class AssignCmd(_message.Message):
    __slots__ = ("items",)
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    items: _containers.RepeatedCompositeFieldContainer[AssignItem]
    def __init__(self, items: _Optional[_Iterable[_Union[AssignItem, _Mapping]]] = ...) -> None: ...

class AssignItem(_message.Message):
    __slots__ = ("job_id", "attempt", "executor")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    EXECUTOR_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    attempt: int
    executor: str
    def __init__(self, job_id: _Optional[str] = ..., attempt: _Optional[int] = ..., executor: _Optional[str] = ...) -> None: ...

class AttemptsStartedCmd(_message.Message):
    __slots__ = ("items", "executor")
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    EXECUTOR_FIELD_NUMBER: _ClassVar[int]
    items: _containers.RepeatedCompositeFieldContainer[_jobs_pb2.AttemptRef]
    executor: str
    def __init__(self, items: _Optional[_Iterable[_Union[_jobs_pb2.AttemptRef, _Mapping]]] = ..., executor: _Optional[str] = ...) -> None: ...

class AttemptsFinishedCmd(_message.Message):
    __slots__ = ("items", "executor", "started")
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    EXECUTOR_FIELD_NUMBER: _ClassVar[int]
    STARTED_FIELD_NUMBER: _ClassVar[int]
    items: _containers.RepeatedCompositeFieldContainer[FinishedItem]
    executor: str
    started: _containers.RepeatedCompositeFieldContainer[_jobs_pb2.AttemptRef]
    def __init__(self, items: _Optional[_Iterable[_Union[FinishedItem, _Mapping]]] = ..., executor: _Optional[str] = ..., started: _Optional[_Iterable[_Union[_jobs_pb2.AttemptRef, _Mapping]]] = ...) -> None: ...

class FinishedItem(_message.Message):
    __slots__ = ("job_id", "attempt", "end", "exit_code", "error", "output_tail")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    END_FIELD_NUMBER: _ClassVar[int]
    EXIT_CODE_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_TAIL_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    attempt: int
    end: _jobs_pb2.AttemptEnd
    exit_code: int
    error: str
    output_tail: bytes
    def __init__(self, job_id: _Optional[str] = ..., attempt: _Optional[int] = ..., end: _Optional[_Union[_jobs_pb2.AttemptEnd, str]] = ..., exit_code: _Optional[int] = ..., error: _Optional[str] = ..., output_tail: _Optional[bytes] = ...) -> None: ...

class AttemptTimedOutCmd(_message.Message):
    __slots__ = ("items",)
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    items: _containers.RepeatedCompositeFieldContainer[_jobs_pb2.AttemptRef]
    def __init__(self, items: _Optional[_Iterable[_Union[_jobs_pb2.AttemptRef, _Mapping]]] = ...) -> None: ...

class ExecutorUpCmd(_message.Message):
    __slots__ = ("executor_id", "slots", "labels", "handlers")
    class LabelsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    EXECUTOR_ID_FIELD_NUMBER: _ClassVar[int]
    SLOTS_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    HANDLERS_FIELD_NUMBER: _ClassVar[int]
    executor_id: str
    slots: int
    labels: _containers.ScalarMap[str, str]
    handlers: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, executor_id: _Optional[str] = ..., slots: _Optional[int] = ..., labels: _Optional[_Mapping[str, str]] = ..., handlers: _Optional[_Iterable[str]] = ...) -> None: ...

class ExecutorDownCmd(_message.Message):
    __slots__ = ("executor_id", "reason", "poison_after")
    EXECUTOR_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    POISON_AFTER_FIELD_NUMBER: _ClassVar[int]
    executor_id: str
    reason: str
    poison_after: int
    def __init__(self, executor_id: _Optional[str] = ..., reason: _Optional[str] = ..., poison_after: _Optional[int] = ...) -> None: ...

class DrainExecutorCmd(_message.Message):
    __slots__ = ("executor_id",)
    EXECUTOR_ID_FIELD_NUMBER: _ClassVar[int]
    executor_id: str
    def __init__(self, executor_id: _Optional[str] = ...) -> None: ...

class QuarantineExecutorCmd(_message.Message):
    __slots__ = ("executor_id", "until_ms", "reason")
    EXECUTOR_ID_FIELD_NUMBER: _ClassVar[int]
    UNTIL_MS_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    executor_id: str
    until_ms: int
    reason: str
    def __init__(self, executor_id: _Optional[str] = ..., until_ms: _Optional[int] = ..., reason: _Optional[str] = ...) -> None: ...

class ReleaseExecutorCmd(_message.Message):
    __slots__ = ("executor_id", "reason")
    EXECUTOR_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    executor_id: str
    reason: str
    def __init__(self, executor_id: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class CreateScheduleCmd(_message.Message):
    __slots__ = ("spec",)
    SPEC_FIELD_NUMBER: _ClassVar[int]
    spec: _scheduler_pb2.ScheduleSpec
    def __init__(self, spec: _Optional[_Union[_scheduler_pb2.ScheduleSpec, _Mapping]] = ...) -> None: ...

class PauseScheduleCmd(_message.Message):
    __slots__ = ("name", "paused", "note")
    NAME_FIELD_NUMBER: _ClassVar[int]
    PAUSED_FIELD_NUMBER: _ClassVar[int]
    NOTE_FIELD_NUMBER: _ClassVar[int]
    name: str
    paused: bool
    note: str
    def __init__(self, name: _Optional[str] = ..., paused: _Optional[bool] = ..., note: _Optional[str] = ...) -> None: ...

class DeleteScheduleCmd(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class FireScheduleCmd(_message.Message):
    __slots__ = ("name", "scheduled_time", "manual", "release_when_due")
    NAME_FIELD_NUMBER: _ClassVar[int]
    SCHEDULED_TIME_FIELD_NUMBER: _ClassVar[int]
    MANUAL_FIELD_NUMBER: _ClassVar[int]
    RELEASE_WHEN_DUE_FIELD_NUMBER: _ClassVar[int]
    name: str
    scheduled_time: int
    manual: bool
    release_when_due: bool
    def __init__(self, name: _Optional[str] = ..., scheduled_time: _Optional[int] = ..., manual: _Optional[bool] = ..., release_when_due: _Optional[bool] = ...) -> None: ...

class ReleaseBufferedCmd(_message.Message):
    __slots__ = ("name", "scheduled_time")
    NAME_FIELD_NUMBER: _ClassVar[int]
    SCHEDULED_TIME_FIELD_NUMBER: _ClassVar[int]
    name: str
    scheduled_time: int
    def __init__(self, name: _Optional[str] = ..., scheduled_time: _Optional[int] = ...) -> None: ...

class SkipFiresCmd(_message.Message):
    __slots__ = ("name", "fires")
    NAME_FIELD_NUMBER: _ClassVar[int]
    FIRES_FIELD_NUMBER: _ClassVar[int]
    name: str
    fires: _containers.RepeatedCompositeFieldContainer[_scheduler_pb2.SkippedFire]
    def __init__(self, name: _Optional[str] = ..., fires: _Optional[_Iterable[_Union[_scheduler_pb2.SkippedFire, _Mapping]]] = ...) -> None: ...

class PurgeCmd(_message.Message):
    __slots__ = ("job_ids", "idempotency_keys", "trim_skipped")
    JOB_IDS_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEYS_FIELD_NUMBER: _ClassVar[int]
    TRIM_SKIPPED_FIELD_NUMBER: _ClassVar[int]
    job_ids: _containers.RepeatedScalarFieldContainer[str]
    idempotency_keys: _containers.RepeatedScalarFieldContainer[str]
    trim_skipped: _containers.RepeatedCompositeFieldContainer[TrimSkipped]
    def __init__(self, job_ids: _Optional[_Iterable[str]] = ..., idempotency_keys: _Optional[_Iterable[str]] = ..., trim_skipped: _Optional[_Iterable[_Union[TrimSkipped, _Mapping]]] = ...) -> None: ...

class TrimSkipped(_message.Message):
    __slots__ = ("schedule", "before_ms")
    SCHEDULE_FIELD_NUMBER: _ClassVar[int]
    BEFORE_MS_FIELD_NUMBER: _ClassVar[int]
    schedule: str
    before_ms: int
    def __init__(self, schedule: _Optional[str] = ..., before_ms: _Optional[int] = ...) -> None: ...

class CheckHashCmd(_message.Message):
    __slots__ = ("check_id",)
    CHECK_ID_FIELD_NUMBER: _ClassVar[int]
    check_id: int
    def __init__(self, check_id: _Optional[int] = ...) -> None: ...

class AlarmCmd(_message.Message):
    __slots__ = ("node", "alarm", "active", "reason")
    NODE_FIELD_NUMBER: _ClassVar[int]
    ALARM_FIELD_NUMBER: _ClassVar[int]
    ACTIVE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    node: str
    alarm: str
    active: bool
    reason: str
    def __init__(self, node: _Optional[str] = ..., alarm: _Optional[str] = ..., active: _Optional[bool] = ..., reason: _Optional[str] = ...) -> None: ...

class NotifyAddCmd(_message.Message):
    __slots__ = ("sink",)
    SINK_FIELD_NUMBER: _ClassVar[int]
    sink: _notify_pb2.NotifySink
    def __init__(self, sink: _Optional[_Union[_notify_pb2.NotifySink, _Mapping]] = ...) -> None: ...

class NotifyRemoveCmd(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class NotifyTestCmd(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class NotifyAckCmd(_message.Message):
    __slots__ = ("sinks",)
    SINKS_FIELD_NUMBER: _ClassVar[int]
    sinks: _containers.RepeatedCompositeFieldContainer[_notify_pb2.NotifyProgress]
    def __init__(self, sinks: _Optional[_Iterable[_Union[_notify_pb2.NotifyProgress, _Mapping]]] = ...) -> None: ...

class LeaderChangedCmd(_message.Message):
    __slots__ = ("leader", "term")
    LEADER_FIELD_NUMBER: _ClassVar[int]
    TERM_FIELD_NUMBER: _ClassVar[int]
    leader: str
    term: int
    def __init__(self, leader: _Optional[str] = ..., term: _Optional[int] = ...) -> None: ...

class ApplyResult(_message.Message):
    __slots__ = ("submitted", "job", "error", "code", "schedule", "refused_items", "event_id")
    SUBMITTED_FIELD_NUMBER: _ClassVar[int]
    JOB_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    CODE_FIELD_NUMBER: _ClassVar[int]
    SCHEDULE_FIELD_NUMBER: _ClassVar[int]
    REFUSED_ITEMS_FIELD_NUMBER: _ClassVar[int]
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    submitted: _containers.RepeatedCompositeFieldContainer[_scheduler_pb2.SubmitResult]
    job: _jobs_pb2.Job
    error: str
    code: int
    schedule: _scheduler_pb2.Schedule
    refused_items: int
    event_id: str
    def __init__(self, submitted: _Optional[_Iterable[_Union[_scheduler_pb2.SubmitResult, _Mapping]]] = ..., job: _Optional[_Union[_jobs_pb2.Job, _Mapping]] = ..., error: _Optional[str] = ..., code: _Optional[int] = ..., schedule: _Optional[_Union[_scheduler_pb2.Schedule, _Mapping]] = ..., refused_items: _Optional[int] = ..., event_id: _Optional[str] = ...) -> None: ...
