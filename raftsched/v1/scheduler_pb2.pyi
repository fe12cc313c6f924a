from raftsched.v1 import jobs_pb2 as _jobs_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class OverlapPolicy(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    OVERLAP_POLICY_ALLOW: _ClassVar[OverlapPolicy]
    OVERLAP_POLICY_SKIP: _ClassVar[OverlapPolicy]
    OVERLAP_POLICY_BUFFER_ONE: _ClassVar[OverlapPolicy]
    OVERLAP_POLICY_CANCEL_OTHER: _ClassVar[OverlapPolicy]

class CatchupPolicy(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CATCHUP_POLICY_SKIP: _ClassVar[CatchupPolicy]
    CATCHUP_POLICY_ONCE: _ClassVar[CatchupPolicy]
    CATCHUP_POLICY_ALL: _ClassVar[CatchupPolicy]
OVERLAP_POLICY_ALLOW: OverlapPolicy
OVERLAP_POLICY_SKIP: OverlapPolicy
OVERLAP_POLICY_BUFFER_ONE: OverlapPolicy
OVERLAP_POLICY_CANCEL_OTHER: OverlapPolicy
CATCHUP_POLICY_SKIP: CatchupPolicy
CATCHUP_POLICY_ONCE: CatchupPolicy
CATCHUP_POLICY_ALL: CatchupPolicy

class SubmitJobRequest(_message.Message):
    __slots__ = ("spec", "request_id")
    SPEC_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    spec: _jobs_pb2.JobSpec
    request_id: str
    def __init__(self, spec: _Optional[_Union[_jobs_pb2.JobSpec, _Mapping]] = ..., request_id: _Optional[str] = ...) -> None: ...

class SubmitJobStreamResponse(_message.Message):
    __slots__ = ("request_id", "job", "existed", "code", "error", "leader", "outcome_unknown")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    JOB_FIELD_NUMBER: _ClassVar[int]
    EXISTED_FIELD_NUMBER: _ClassVar[int]
    CODE_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    LEADER_FIELD_NUMBER: _ClassVar[int]
    OUTCOME_UNKNOWN_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    job: _jobs_pb2.Job
    existed: bool
    code: int
    error: str
    leader: str
    outcome_unknown: bool
    def __init__(self, request_id: _Optional[str] = ..., job: _Optional[_Union[_jobs_pb2.Job, _Mapping]] = ..., existed: _Optional[bool] = ..., code: _Optional[int] = ..., error: _Optional[str] = ..., leader: _Optional[str] = ..., outcome_unknown: _Optional[bool] = ...) -> None: ...

class SubmitJobResponse(_message.Message):
    __slots__ = ("job", "existed")
    JOB_FIELD_NUMBER: _ClassVar[int]
    EXISTED_FIELD_NUMBER: _ClassVar[int]
    job: _jobs_pb2.Job
    existed: bool
    def __init__(self, job: _Optional[_Union[_jobs_pb2.Job, _Mapping]] = ..., existed: _Optional[bool] = ...) -> None: ...

class SubmitJobsRequest(_message.Message):
    __slots__ = ("specs",)
    SPECS_FIELD_NUMBER: _ClassVar[int]
    specs: _containers.RepeatedCompositeFieldContainer[_jobs_pb2.JobSpec]
    def __init__(self, specs: _Optional[_Iterable[_Union[_jobs_pb2.JobSpec, _Mapping]]] = ...) -> None: ...

class SubmitResult(_message.Message):
    __slots__ = ("job", "existed", "error", "code")
    JOB_FIELD_NUMBER: _ClassVar[int]
    EXISTED_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    CODE_FIELD_NUMBER: _ClassVar[int]
    job: _jobs_pb2.Job
    existed: bool
    error: str
    code: int
    def __init__(self, job: _Optional[_Union[_jobs_pb2.Job, _Mapping]] = ..., existed: _Optional[bool] = ..., error: _Optional[str] = ..., code: _Optional[int] = ...) -> None: ...

class SubmitJobsResponse(_message.Message):
    __slots__ = ("results",)
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[SubmitResult]
    def __init__(self, results: _Optional[_Iterable[_Union[SubmitResult, _Mapping]]] = ...) -> None: ...

class GetJobRequest(_message.Message):
    __slots__ = ("id", "stale")
    ID_FIELD_NUMBER: _ClassVar[int]
    STALE_FIELD_NUMBER: _ClassVar[int]
    id: str
    stale: bool
    def __init__(self, id: _Optional[str] = ..., stale: _Optional[bool] = ...) -> None: ...

class ListJobsRequest(_message.Message):
    __slots__ = ("state", "schedule", "page_size", "page_token", "stale", "newest_first", "created_after_ms", "created_before_ms", "name", "labels")
    class LabelsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    STATE_FIELD_NUMBER: _ClassVar[int]
    SCHEDULE_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    STALE_FIELD_NUMBER: _ClassVar[int]
    NEWEST_FIRST_FIELD_NUMBER: _ClassVar[int]
    CREATED_AFTER_MS_FIELD_NUMBER: _ClassVar[int]
    CREATED_BEFORE_MS_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    state: _jobs_pb2.JobState
    schedule: str
    page_size: int
    page_token: str
    stale: bool
    newest_first: bool
    created_after_ms: int
    created_before_ms: int
    name: str
    labels: _containers.ScalarMap[str, str]
    def __init__(self, state: _Optional[_Union[_jobs_pb2.JobState, str]] = ..., schedule: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., stale: _Optional[bool] = ..., newest_first: _Optional[bool] = ..., created_after_ms: _Optional[int] = ..., created_before_ms: _Optional[int] = ..., name: _Optional[str] = ..., labels: _Optional[_Mapping[str, str]] = ...) -> None: ...

class ListJobsResponse(_message.Message):
    __slots__ = ("jobs", "next_page_token")
    JOBS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    jobs: _containers.RepeatedCompositeFieldContainer[_jobs_pb2.Job]
    next_page_token: str
    def __init__(self, jobs: _Optional[_Iterable[_Union[_jobs_pb2.Job, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class CancelJobRequest(_message.Message):
    __slots__ = ("id", "reason")
    ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    id: str
    reason: str
    def __init__(self, id: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class WatchJobRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class CheckFenceRequest(_message.Message):
    __slots__ = ("job_id", "attempt")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    attempt: int
    def __init__(self, job_id: _Optional[str] = ..., attempt: _Optional[int] = ...) -> None: ...

class CheckFenceResponse(_message.Message):
    __slots__ = ("current", "current_attempt", "state")
    CURRENT_FIELD_NUMBER: _ClassVar[int]
    CURRENT_ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    current: bool
    current_attempt: int
    state: _jobs_pb2.JobState
    def __init__(self, current: _Optional[bool] = ..., current_attempt: _Optional[int] = ..., state: _Optional[_Union[_jobs_pb2.JobState, str]] = ...) -> None: ...

class ListExecutorsRequest(_message.Message):
    __slots__ = ("stale",)
    STALE_FIELD_NUMBER: _ClassVar[int]
    stale: bool
    def __init__(self, stale: _Optional[bool] = ...) -> None: ...

class ListExecutorsResponse(_message.Message):
    __slots__ = ("executors",)
    EXECUTORS_FIELD_NUMBER: _ClassVar[int]
    executors: _containers.RepeatedCompositeFieldContainer[_jobs_pb2.ExecutorInfo]
    def __init__(self, executors: _Optional[_Iterable[_Union[_jobs_pb2.ExecutorInfo, _Mapping]]] = ...) -> None: ...

class DrainExecutorRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class ReleaseExecutorRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class ScheduleSpec(_message.Message):
    __slots__ = ("name", "cron", "timezone", "every_ms", "start_ms", "end_ms", "jitter_ms", "template", "overlap", "catchup", "catchup_window_ms", "catchup_max", "keep_succeeded", "keep_failed")
    NAME_FIELD_NUMBER: _ClassVar[int]
    CRON_FIELD_NUMBER: _ClassVar[int]
    TIMEZONE_FIELD_NUMBER: _ClassVar[int]
    EVERY_MS_FIELD_NUMBER: _ClassVar[int]
    START_MS_FIELD_NUMBER: _ClassVar[int]
    END_MS_FIELD_NUMBER: _ClassVar[int]
    JITTER_MS_FIELD_NUMBER: _ClassVar[int]
    TEMPLATE_FIELD_NUMBER: _ClassVar[int]
    OVERLAP_FIELD_NUMBER: _ClassVar[int]
    CATCHUP_FIELD_NUMBER: _ClassVar[int]
    CATCHUP_WINDOW_MS_FIELD_NUMBER: _ClassVar[int]
    CATCHUP_MAX_FIELD_NUMBER: _ClassVar[int]
    KEEP_SUCCEEDED_FIELD_NUMBER: _ClassVar[int]
    KEEP_FAILED_FIELD_NUMBER: _ClassVar[int]
    name: str
    cron: str
    timezone: str
    every_ms: int
    start_ms: int
    end_ms: int
    jitter_ms: int
    template: _jobs_pb2.JobSpec
    overlap: OverlapPolicy
    catchup: CatchupPolicy
    catchup_window_ms: int
    catchup_max: int
    keep_succeeded: int
    keep_failed: int
    def __init__(self, name: _Optional[str] = ..., cron: _Optional[str] = ..., timezone: _Optional[str] = ..., every_ms: _Optional[int] = ..., start_ms: _Optional[int] = ..., end_ms: _Optional[int] = ..., jitter_ms: _Optional[int] = ..., template: _Optional[_Union[_jobs_pb2.JobSpec, _Mapping]] = ..., overlap: _Optional[_Union[OverlapPolicy, str]] = ..., catchup: _Optional[_Union[CatchupPolicy, str]] = ..., catchup_window_ms: _Optional[int] = ..., catchup_max: _Optional[int] = ..., keep_succeeded: _Optional[int] = ..., keep_failed: _Optional[int] = ...) -> None: ...

class SkippedFire(_message.Message):
    __slots__ = ("scheduled_time", "reason")
    SCHEDULED_TIME_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    scheduled_time: int
    reason: str
    def __init__(self, scheduled_time: _Optional[int] = ..., reason: _Optional[str] = ...) -> None: ...

class Schedule(_message.Message):
    __slots__ = ("id", "spec", "paused", "note", "created_ms", "last_fired_time", "next_fire_times", "skipped", "fired_count", "skipped_count", "last_job_id", "buffered", "last_skipped_time", "release_when_due")
    ID_FIELD_NUMBER: _ClassVar[int]
    SPEC_FIELD_NUMBER: _ClassVar[int]
    PAUSED_FIELD_NUMBER: _ClassVar[int]
    NOTE_FIELD_NUMBER: _ClassVar[int]
    CREATED_MS_FIELD_NUMBER: _ClassVar[int]
    LAST_FIRED_TIME_FIELD_NUMBER: _ClassVar[int]
    NEXT_FIRE_TIMES_FIELD_NUMBER: _ClassVar[int]
    SKIPPED_FIELD_NUMBER: _ClassVar[int]
    FIRED_COUNT_FIELD_NUMBER: _ClassVar[int]
    SKIPPED_COUNT_FIELD_NUMBER: _ClassVar[int]
    LAST_JOB_ID_FIELD_NUMBER: _ClassVar[int]
    BUFFERED_FIELD_NUMBER: _ClassVar[int]
    LAST_SKIPPED_TIME_FIELD_NUMBER: _ClassVar[int]
    RELEASE_WHEN_DUE_FIELD_NUMBER: _ClassVar[int]
    id: str
    spec: ScheduleSpec
    paused: bool
    note: str
    created_ms: int
    last_fired_time: int
    next_fire_times: _containers.RepeatedScalarFieldContainer[int]
    skipped: _containers.RepeatedCompositeFieldContainer[SkippedFire]
    fired_count: int
    skipped_count: int
    last_job_id: str
    buffered: bool
    last_skipped_time: int
    release_when_due: bool
    def __init__(self, id: _Optional[str] = ..., spec: _Optional[_Union[ScheduleSpec, _Mapping]] = ..., paused: _Optional[bool] = ..., note: _Optional[str] = ..., created_ms: _Optional[int] = ..., last_fired_time: _Optional[int] = ..., next_fire_times: _Optional[_Iterable[int]] = ..., skipped: _Optional[_Iterable[_Union[SkippedFire, _Mapping]]] = ..., fired_count: _Optional[int] = ..., skipped_count: _Optional[int] = ..., last_job_id: _Optional[str] = ..., buffered: _Optional[bool] = ..., last_skipped_time: _Optional[int] = ..., release_when_due: _Optional[bool] = ...) -> None: ...

class CreateScheduleRequest(_message.Message):
    __slots__ = ("spec",)
    SPEC_FIELD_NUMBER: _ClassVar[int]
    spec: ScheduleSpec
    def __init__(self, spec: _Optional[_Union[ScheduleSpec, _Mapping]] = ...) -> None: ...

class ListSchedulesRequest(_message.Message):
    __slots__ = ("stale",)
    STALE_FIELD_NUMBER: _ClassVar[int]
    stale: bool
    def __init__(self, stale: _Optional[bool] = ...) -> None: ...

class ListSchedulesResponse(_message.Message):
    __slots__ = ("schedules",)
    SCHEDULES_FIELD_NUMBER: _ClassVar[int]
    schedules: _containers.RepeatedCompositeFieldContainer[Schedule]
    def __init__(self, schedules: _Optional[_Iterable[_Union[Schedule, _Mapping]]] = ...) -> None: ...

class GetScheduleRequest(_message.Message):
    __slots__ = ("name", "stale")
    NAME_FIELD_NUMBER: _ClassVar[int]
    STALE_FIELD_NUMBER: _ClassVar[int]
    name: str
    stale: bool
    def __init__(self, name: _Optional[str] = ..., stale: _Optional[bool] = ...) -> None: ...

class PauseScheduleRequest(_message.Message):
    __slots__ = ("name", "note")
    NAME_FIELD_NUMBER: _ClassVar[int]
    NOTE_FIELD_NUMBER: _ClassVar[int]
    name: str
    note: str
    def __init__(self, name: _Optional[str] = ..., note: _Optional[str] = ...) -> None: ...

class ResumeScheduleRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class TriggerScheduleRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class DeleteScheduleRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class DeleteScheduleResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...
