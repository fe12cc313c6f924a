from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable
from typing import ClassVar as _ClassVar, Optional as _Optional

DESCRIPTOR: _descriptor.FileDescriptor

class NotifySink(_message.Message):
    __slots__ = ("name", "url", "secret", "events", "created_ms", "has_secret", "queued", "delivered", "failed_attempts", "expired", "dropped", "pending", "last_error", "last_error_ms", "last_delivered_ms")
    NAME_FIELD_NUMBER: _ClassVar[int]
    URL_FIELD_NUMBER: _ClassVar[int]
    SECRET_FIELD_NUMBER: _ClassVar[int]
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    CREATED_MS_FIELD_NUMBER: _ClassVar[int]
    HAS_SECRET_FIELD_NUMBER: _ClassVar[int]
    QUEUED_FIELD_NUMBER: _ClassVar[int]
    DELIVERED_FIELD_NUMBER: _ClassVar[int]
    FAILED_ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    EXPIRED_FIELD_NUMBER: _ClassVar[int]
    DROPPED_FIELD_NUMBER: _ClassVar[int]
    PENDING_FIELD_NUMBER: _ClassVar[int]
    LAST_ERROR_FIELD_NUMBER: _ClassVar[int]
    LAST_ERROR_MS_FIELD_NUMBER: _ClassVar[int]
    LAST_DELIVERED_MS_FIELD_NUMBER: _ClassVar[int]
    name: str
    url: str
    secret: bytes
    events: _containers.RepeatedScalarFieldContainer[str]
    created_ms: int
    has_secret: bool
    queued: int
    delivered: int
    failed_attempts: int
    expired: int
    dropped: int
    pending: int
    last_error: str
    last_error_ms: int
    last_delivered_ms: int
    def __init__(self, name: _Optional[str] = ..., url: _Optional[str] = ..., secret: _Optional[bytes] = ..., events: _Optional[_Iterable[str]] = ..., created_ms: _Optional[int] = ..., has_secret: _Optional[bool] = ..., queued: _Optional[int] = ..., delivered: _Optional[int] = ..., failed_attempts: _Optional[int] = ..., expired: _Optional[int] = ..., dropped: _Optional[int] = ..., pending: _Optional[int] = ..., last_error: _Optional[str] = ..., last_error_ms: _Optional[int] = ..., last_delivered_ms: _Optional[int] = ...) -> None: ...

class NotifyEvent(_message.Message):
    __slots__ = ("id", "type", "time_ms", "data_json")
    ID_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    TIME_MS_FIELD_NUMBER: _ClassVar[int]
    DATA_JSON_FIELD_NUMBER: _ClassVar[int]
    id: str
    type: str
    time_ms: int
    data_json: str
    def __init__(self, id: _Optional[str] = ..., type: _Optional[str] = ..., time_ms: _Optional[int] = ..., data_json: _Optional[str] = ...) -> None: ...

class NotifyProgress(_message.Message):
    __slots__ = ("sink", "delivered", "expired", "failed_attempts", "last_error", "last_error_ms")
    SINK_FIELD_NUMBER: _ClassVar[int]
    DELIVERED_FIELD_NUMBER: _ClassVar[int]
    EXPIRED_FIELD_NUMBER: _ClassVar[int]
    FAILED_ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    LAST_ERROR_FIELD_NUMBER: _ClassVar[int]
    LAST_ERROR_MS_FIELD_NUMBER: _ClassVar[int]
    sink: str
    delivered: _containers.RepeatedScalarFieldContainer[str]
    expired: _containers.RepeatedScalarFieldContainer[str]
    failed_attempts: int
    last_error: str
    last_error_ms: int
    def __init__(self, sink: _Optional[str] = ..., delivered: _Optional[_Iterable[str]] = ..., expired: _Optional[_Iterable[str]] = ..., failed_attempts: _Optional[int] = ..., last_error: _Optional[str] = ..., last_error_ms: _Optional[int] = ...) -> None: ...
