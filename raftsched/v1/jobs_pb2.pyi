from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class JobState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    JOB_STATE_UNSPECIFIED: _ClassVar[JobState]
    JOB_STATE_PENDING: _ClassVar[JobState]
    JOB_STATE_QUEUED: _ClassVar[JobState]
    JOB_STATE_ASSIGNED: _ClassVar[JobState]
    JOB_STATE_RUNNING: _ClassVar[JobState]
    JOB_STATE_SUCCEEDED: _ClassVar[JobState]
    JOB_STATE_FAILED: _ClassVar[JobState]
    JOB_STATE_CANCELLED: _ClassVar[JobState]
    JOB_STATE_SKIPPED: _ClassVar[JobState]

class AttemptEnd(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ATTEMPT_END_UNSPECIFIED: _ClassVar[AttemptEnd]
    ATTEMPT_END_SUCCEEDED: _ClassVar[AttemptEnd]
    ATTEMPT_END_FAILED: _ClassVar[AttemptEnd]
    ATTEMPT_END_TIMED_OUT: _ClassVar[AttemptEnd]
    ATTEMPT_END_CANCELLED: _ClassVar[AttemptEnd]
    ATTEMPT_END_EXECUTOR_LOST: _ClassVar[AttemptEnd]
    ATTEMPT_END_FENCED: _ClassVar[AttemptEnd]

class ExecutorState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    EXECUTOR_STATE_UNSPECIFIED: _ClassVar[ExecutorState]
    EXECUTOR_STATE_CONNECTED: _ClassVar[ExecutorState]
    EXECUTOR_STATE_DISCONNECTED: _ClassVar[ExecutorState]
    EXECUTOR_STATE_DOWN: _ClassVar[ExecutorState]
    EXECUTOR_STATE_DRAINING: _ClassVar[ExecutorState]
    EXECUTOR_STATE_QUARANTINED: _ClassVar[ExecutorState]
JOB_STATE_UNSPECIFIED: JobState
JOB_STATE_PENDING: JobState
JOB_STATE_QUEUED: JobState
JOB_STATE_ASSIGNED: JobState
JOB_STATE_RUNNING: JobState
JOB_STATE_SUCCEEDED: JobState
JOB_STATE_FAILED: JobState
JOB_STATE_CANCELLED: JobState
JOB_STATE_SKIPPED: JobState
ATTEMPT_END_UNSPECIFIED: AttemptEnd
ATTEMPT_END_SUCCEEDED: AttemptEnd
ATTEMPT_END_FAILED: AttemptEnd
ATTEMPT_END_TIMED_OUT: AttemptEnd
ATTEMPT_END_CANCELLED: AttemptEnd
ATTEMPT_END_EXECUTOR_LOST: AttemptEnd
ATTEMPT_END_FENCED: AttemptEnd
EXECUTOR_STATE_UNSPECIFIED: ExecutorState
EXECUTOR_STATE_CONNECTED: ExecutorState
EXECUTOR_STATE_DISCONNECTED: ExecutorState
EXECUTOR_STATE_DOWN: ExecutorState
EXECUTOR_STATE_DRAINING: ExecutorState
EXECUTOR_STATE_QUARANTINED: ExecutorState

class JobSpec(_message.Message):
    __slots__ = ("name", "command", "handler", "payload", "max_attempts", "backoff", "timeout_ms", "priority", "depends_on", "labels", "slots", "idempotency_key")
    class LabelsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    NAME_FIELD_NUMBER: _ClassVar[int]
    COMMAND_FIELD_NUMBER: _ClassVar[int]
    HANDLER_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    MAX_ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    BACKOFF_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_MS_FIELD_NUMBER: _ClassVar[int]
    PRIORITY_FIELD_NUMBER: _ClassVar[int]
    DEPENDS_ON_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    SLOTS_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    name: str
    command: _containers.RepeatedScalarFieldContainer[str]
    handler: str
    payload: bytes
    max_attempts: int
    backoff: RetryBackoff
    timeout_ms: int
    priority: int
    depends_on: _containers.RepeatedScalarFieldContainer[str]
    labels: _containers.ScalarMap[str, str]
    slots: int
    idempotency_key: str
    def __init__(self, name: _Optional[str] = ..., command: _Optional[_Iterable[str]] = ..., handler: _Optional[str] = ..., payload: _Optional[bytes] = ..., max_attempts: _Optional[int] = ..., backoff: _Optional[_Union[RetryBackoff, _Mapping]] = ..., timeout_ms: _Optional[int] = ..., priority: _Optional[int] = ..., depends_on: _Optional[_Iterable[str]] = ..., labels: _Optional[_Mapping[str, str]] = ..., slots: _Optional[int] = ..., idempotency_key: _Optional[str] = ...) -> None: ...

class RetryBackoff(_message.Message):
    __slots__ = ("initial_ms", "max_ms", "multiplier")
    INITIAL_MS_FIELD_NUMBER: _ClassVar[int]
    MAX_MS_FIELD_NUMBER: _ClassVar[int]
    MULTIPLIER_FIELD_NUMBER: _ClassVar[int]
    initial_ms: int
    max_ms: int
    multiplier: float
    def __init__(self, initial_ms: _Optional[int] = ..., max_ms: _Optional[int] = ..., multiplier: _Optional[float] = ...) -> None: ...

class Attempt(_message.Message):
    __slots__ = ("number", "executor", "assigned_ms", "started_ms", "finished_ms", "exit_code", "error", "output_tail", "end")
    NUMBER_FIELD_NUMBER: _ClassVar[int]
    EXECUTOR_FIELD_NUMBER: _ClassVar[int]
    ASSIGNED_MS_FIELD_NUMBER: _ClassVar[int]
    STARTED_MS_FIELD_NUMBER: _ClassVar[int]
    FINISHED_MS_FIELD_NUMBER: _ClassVar[int]
    EXIT_CODE_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_TAIL_FIELD_NUMBER: _ClassVar[int]
    END_FIELD_NUMBER: _ClassVar[int]
    number: int
    executor: str
    assigned_ms: int
    started_ms: int
    finished_ms: int
    exit_code: int
    error: str
    output_tail: bytes
    end: AttemptEnd
    def __init__(self, number: _Optional[int] = ..., executor: _Optional[str] = ..., assigned_ms: _Optional[int] = ..., started_ms: _Optional[int] = ..., finished_ms: _Optional[int] = ..., exit_code: _Optional[int] = ..., error: _Optional[str] = ..., output_tail: _Optional[bytes] = ..., end: _Optional[_Union[AttemptEnd, str]] = ...) -> None: ...

class Job(_message.Message):
    __slots__ = ("id", "spec", "state", "submitted_ms", "updated_ms", "seq", "not_before_ms", "attempts", "schedule_id", "scheduled_time", "stale_results_refused", "state_reason")
    ID_FIELD_NUMBER: _ClassVar[int]
    SPEC_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    SUBMITTED_MS_FIELD_NUMBER: _ClassVar[int]
    UPDATED_MS_FIELD_NUMBER: _ClassVar[int]
    SEQ_FIELD_NUMBER: _ClassVar[int]
    NOT_BEFORE_MS_FIELD_NUMBER: _ClassVar[int]
    ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    SCHEDULE_ID_FIELD_NUMBER: _ClassVar[int]
    SCHEDULED_TIME_FIELD_NUMBER: _ClassVar[int]
    STALE_RESULTS_REFUSED_FIELD_NUMBER: _ClassVar[int]
    STATE_REASON_FIELD_NUMBER: _ClassVar[int]
    id: str
    spec: JobSpec
    state: JobState
    submitted_ms: int
    updated_ms: int
    seq: int
    not_before_ms: int
    attempts: _containers.RepeatedCompositeFieldContainer[Attempt]
    schedule_id: str
    scheduled_time: int
    stale_results_refused: int
    state_reason: str
    def __init__(self, id: _Optional[str] = ..., spec: _Optional[_Union[JobSpec, _Mapping]] = ..., state: _Optional[_Union[JobState, str]] = ..., submitted_ms: _Optional[int] = ..., updated_ms: _Optional[int] = ..., seq: _Optional[int] = ..., not_before_ms: _Optional[int] = ..., attempts: _Optional[_Iterable[_Union[Attempt, _Mapping]]] = ..., schedule_id: _Optional[str] = ..., scheduled_time: _Optional[int] = ..., stale_results_refused: _Optional[int] = ..., state_reason: _Optional[str] = ...) -> None: ...

class ExecutorInfo(_message.Message):
    __slots__ = ("id", "state", "slots", "labels", "handlers", "registered_ms", "last_seen_ms", "lease_remaining_ms", "running", "free_slots", "consecutive_failures", "failing_since_ms", "last_success_ms", "quarantined_until_ms", "quarantines", "state_reason")
    class LabelsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    ID_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    SLOTS_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    HANDLERS_FIELD_NUMBER: _ClassVar[int]
    REGISTERED_MS_FIELD_NUMBER: _ClassVar[int]
    LAST_SEEN_MS_FIELD_NUMBER: _ClassVar[int]
    LEASE_REMAINING_MS_FIELD_NUMBER: _ClassVar[int]
    RUNNING_FIELD_NUMBER: _ClassVar[int]
    FREE_SLOTS_FIELD_NUMBER: _ClassVar[int]
    CONSECUTIVE_FAILURES_FIELD_NUMBER: _ClassVar[int]
    FAILING_SINCE_MS_FIELD_NUMBER: _ClassVar[int]
    LAST_SUCCESS_MS_FIELD_NUMBER: _ClassVar[int]
    QUARANTINED_UNTIL_MS_FIELD_NUMBER: _ClassVar[int]
    QUARANTINES_FIELD_NUMBER: _ClassVar[int]
    STATE_REASON_FIELD_NUMBER: _ClassVar[int]
    id: str
    state: ExecutorState
    slots: int
    labels: _containers.ScalarMap[str, str]
    handlers: _containers.RepeatedScalarFieldContainer[str]
    registered_ms: int
    last_seen_ms: int
    lease_remaining_ms: int
    running: _containers.RepeatedCompositeFieldContainer[AttemptRef]
    free_slots: int
    consecutive_failures: int
    failing_since_ms: int
    last_success_ms: int
    quarantined_until_ms: int
    quarantines: int
    state_reason: str
    def __init__(self, id: _Optional[str] = ..., state: _Optional[_Union[ExecutorState, str]] = ..., slots: _Optional[int] = ..., labels: _Optional[_Mapping[str, str]] = ..., handlers: _Optional[_Iterable[str]] = ..., registered_ms: _Optional[int] = ..., last_seen_ms: _Optional[int] = ..., lease_remaining_ms: _Optional[int] = ..., running: _Optional[_Iterable[_Union[AttemptRef, _Mapping]]] = ..., free_slots: _Optional[int] = ..., consecutive_failures: _Optional[int] = ..., failing_since_ms: _Optional[int] = ..., last_success_ms: _Optional[int] = ..., quarantined_until_ms: _Optional[int] = ..., quarantines: _Optional[int] = ..., state_reason: _Optional[str] = ...) -> None: ...

class AttemptRef(_message.Message):
    __slots__ = ("job_id", "attempt")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    attempt: int
    def __init__(self, job_id: _Optional[str] = ..., attempt: _Optional[int] = ...) -> None: ...
