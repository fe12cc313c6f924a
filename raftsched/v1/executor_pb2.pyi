from raftsched.v1 import jobs_pb2 as _jobs_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ExecutorMessage(_message.Message):
    __slots__ = ("register", "heartbeat", "started", "finished")
    REGISTER_FIELD_NUMBER: _ClassVar[int]
    HEARTBEAT_FIELD_NUMBER: _ClassVar[int]
    STARTED_FIELD_NUMBER: _ClassVar[int]
    FINISHED_FIELD_NUMBER: _ClassVar[int]
    register: Register
    heartbeat: Heartbeat
    started: _containers.RepeatedCompositeFieldContainer[TaskStarted]
    finished: _containers.RepeatedCompositeFieldContainer[TaskFinished]
    def __init__(self, register: _Optional[_Union[Register, _Mapping]] = ..., heartbeat: _Optional[_Union[Heartbeat, _Mapping]] = ..., started: _Optional[_Iterable[_Union[TaskStarted, _Mapping]]] = ..., finished: _Optional[_Iterable[_Union[TaskFinished, _Mapping]]] = ...) -> None: ...

class Register(_message.Message):
    __slots__ = ("executor_id", "slots", "labels", "handlers", "running", "unacked", "draining", "incarnation")
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
    RUNNING_FIELD_NUMBER: _ClassVar[int]
    UNACKED_FIELD_NUMBER: _ClassVar[int]
    DRAINING_FIELD_NUMBER: _ClassVar[int]
    INCARNATION_FIELD_NUMBER: _ClassVar[int]
    executor_id: str
    slots: int
    labels: _containers.ScalarMap[str, str]
    handlers: _containers.RepeatedScalarFieldContainer[str]
    running: _containers.RepeatedCompositeFieldContainer[_jobs_pb2.AttemptRef]
    unacked: _containers.RepeatedCompositeFieldContainer[TaskFinished]
    draining: bool
    incarnation: str
    def __init__(self, executor_id: _Optional[str] = ..., slots: _Optional[int] = ..., labels: _Optional[_Mapping[str, str]] = ..., handlers: _Optional[_Iterable[str]] = ..., running: _Optional[_Iterable[_Union[_jobs_pb2.AttemptRef, _Mapping]]] = ..., unacked: _Optional[_Iterable[_Union[TaskFinished, _Mapping]]] = ..., draining: _Optional[bool] = ..., incarnation: _Optional[str] = ...) -> None: ...

class Heartbeat(_message.Message):
    __slots__ = ("seq", "running", "draining")
    SEQ_FIELD_NUMBER: _ClassVar[int]
    RUNNING_FIELD_NUMBER: _ClassVar[int]
    DRAINING_FIELD_NUMBER: _ClassVar[int]
    seq: int
    running: _containers.RepeatedCompositeFieldContainer[_jobs_pb2.AttemptRef]
    draining: bool
    def __init__(self, seq: _Optional[int] = ..., running: _Optional[_Iterable[_Union[_jobs_pb2.AttemptRef, _Mapping]]] = ..., draining: _Optional[bool] = ...) -> None: ...

class TaskStarted(_message.Message):
    __slots__ = ("job_id", "attempt")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    attempt: int
    def __init__(self, job_id: _Optional[str] = ..., attempt: _Optional[int] = ...) -> None: ...

class TaskFinished(_message.Message):
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

class Assignment(_message.Message):
    __slots__ = ("job_id", "attempt", "spec")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    SPEC_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    attempt: int
    spec: _jobs_pb2.JobSpec
    def __init__(self, job_id: _Optional[str] = ..., attempt: _Optional[int] = ..., spec: _Optional[_Union[_jobs_pb2.JobSpec, _Mapping]] = ...) -> None: ...

class LeaderMessage(_message.Message):
    __slots__ = ("assign", "cancel", "heartbeat_ack", "acked", "leader_id")
    ASSIGN_FIELD_NUMBER: _ClassVar[int]
    CANCEL_FIELD_NUMBER: _ClassVar[int]
    HEARTBEAT_ACK_FIELD_NUMBER: _ClassVar[int]
    ACKED_FIELD_NUMBER: _ClassVar[int]
    LEADER_ID_FIELD_NUMBER: _ClassVar[int]
    assign: _containers.RepeatedCompositeFieldContainer[Assignment]
    cancel: _containers.RepeatedCompositeFieldContainer[_jobs_pb2.AttemptRef]
    heartbeat_ack: HeartbeatAck
    acked: _containers.RepeatedCompositeFieldContainer[_jobs_pb2.AttemptRef]
    leader_id: str
    def __init__(self, assign: _Optional[_Iterable[_Union[Assignment, _Mapping]]] = ..., cancel: _Optional[_Iterable[_Union[_jobs_pb2.AttemptRef, _Mapping]]] = ..., heartbeat_ack: _Optional[_Union[HeartbeatAck, _Mapping]] = ..., acked: _Optional[_Iterable[_Union[_jobs_pb2.AttemptRef, _Mapping]]] = ..., leader_id: _Optional[str] = ...) -> None: ...

class HeartbeatAck(_message.Message):
    __slots__ = ("seq", "lease_ms")
    SEQ_FIELD_NUMBER: _ClassVar[int]
    LEASE_MS_FIELD_NUMBER: _ClassVar[int]
    seq: int
    lease_ms: int
    def __init__(self, seq: _Optional[int] = ..., lease_ms: _Optional[int] = ...) -> None: ...
