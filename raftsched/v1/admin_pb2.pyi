from raftsched.v1 import raft_pb2 as _raft_pb2
from raftsched.v1 import notify_pb2 as _notify_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Role(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ROLE_UNSPECIFIED: _ClassVar[Role]
    ROLE_FOLLOWER: _ClassVar[Role]
    ROLE_PRE_CANDIDATE: _ClassVar[Role]
    ROLE_CANDIDATE: _ClassVar[Role]
    ROLE_LEADER: _ClassVar[Role]
    ROLE_LEARNER: _ClassVar[Role]
ROLE_UNSPECIFIED: Role
ROLE_FOLLOWER: Role
ROLE_PRE_CANDIDATE: Role
ROLE_CANDIDATE: Role
ROLE_LEADER: Role
ROLE_LEARNER: Role

class StatusRequest(_message.Message):
    __slots__ = ("local_only",)
    LOCAL_ONLY_FIELD_NUMBER: _ClassVar[int]
    local_only: bool
    def __init__(self, local_only: _Optional[bool] = ...) -> None: ...

class NodeStatus(_message.Message):
    __slots__ = ("id", "address", "role", "term", "leader", "commit_index", "applied_index", "last_log_index", "last_contact_ms", "healthy", "error", "snapshot_index", "voter", "job_counts", "alarms")
    class JobCountsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    ID_FIELD_NUMBER: _ClassVar[int]
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    TERM_FIELD_NUMBER: _ClassVar[int]
    LEADER_FIELD_NUMBER: _ClassVar[int]
    COMMIT_INDEX_FIELD_NUMBER: _ClassVar[int]
    APPLIED_INDEX_FIELD_NUMBER: _ClassVar[int]
    LAST_LOG_INDEX_FIELD_NUMBER: _ClassVar[int]
    LAST_CONTACT_MS_FIELD_NUMBER: _ClassVar[int]
    HEALTHY_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    SNAPSHOT_INDEX_FIELD_NUMBER: _ClassVar[int]
    VOTER_FIELD_NUMBER: _ClassVar[int]
    JOB_COUNTS_FIELD_NUMBER: _ClassVar[int]
    ALARMS_FIELD_NUMBER: _ClassVar[int]
    id: str
    address: str
    role: Role
    term: int
    leader: str
    commit_index: int
    applied_index: int
    last_log_index: int
    last_contact_ms: int
    healthy: bool
    error: str
    snapshot_index: int
    voter: bool
    job_counts: _containers.ScalarMap[str, int]
    alarms: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, id: _Optional[str] = ..., address: _Optional[str] = ..., role: _Optional[_Union[Role, str]] = ..., term: _Optional[int] = ..., leader: _Optional[str] = ..., commit_index: _Optional[int] = ..., applied_index: _Optional[int] = ..., last_log_index: _Optional[int] = ..., last_contact_ms: _Optional[int] = ..., healthy: _Optional[bool] = ..., error: _Optional[str] = ..., snapshot_index: _Optional[int] = ..., voter: _Optional[bool] = ..., job_counts: _Optional[_Mapping[str, int]] = ..., alarms: _Optional[_Iterable[str]] = ...) -> None: ...

class StatusResponse(_message.Message):
    __slots__ = ("nodes", "cluster_id")
    NODES_FIELD_NUMBER: _ClassVar[int]
    CLUSTER_ID_FIELD_NUMBER: _ClassVar[int]
    nodes: _containers.RepeatedCompositeFieldContainer[NodeStatus]
    cluster_id: str
    def __init__(self, nodes: _Optional[_Iterable[_Union[NodeStatus, _Mapping]]] = ..., cluster_id: _Optional[str] = ...) -> None: ...

class ListMembersRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListMembersResponse(_message.Message):
    __slots__ = ("voters", "learners")
    VOTERS_FIELD_NUMBER: _ClassVar[int]
    LEARNERS_FIELD_NUMBER: _ClassVar[int]
    voters: _containers.RepeatedCompositeFieldContainer[_raft_pb2.Member]
    learners: _containers.RepeatedCompositeFieldContainer[_raft_pb2.Member]
    def __init__(self, voters: _Optional[_Iterable[_Union[_raft_pb2.Member, _Mapping]]] = ..., learners: _Optional[_Iterable[_Union[_raft_pb2.Member, _Mapping]]] = ...) -> None: ...

class AddMemberRequest(_message.Message):
    __slots__ = ("id", "address", "learner")
    ID_FIELD_NUMBER: _ClassVar[int]
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    LEARNER_FIELD_NUMBER: _ClassVar[int]
    id: str
    address: str
    learner: bool
    def __init__(self, id: _Optional[str] = ..., address: _Optional[str] = ..., learner: _Optional[bool] = ...) -> None: ...

class PromoteMemberRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class RemoveMemberRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class TransferLeaderRequest(_message.Message):
    __slots__ = ("target",)
    TARGET_FIELD_NUMBER: _ClassVar[int]
    target: str
    def __init__(self, target: _Optional[str] = ...) -> None: ...

class TransferLeaderResponse(_message.Message):
    __slots__ = ("leader",)
    LEADER_FIELD_NUMBER: _ClassVar[int]
    leader: str
    def __init__(self, leader: _Optional[str] = ...) -> None: ...

class SaveSnapshotRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class SnapshotChunk(_message.Message):
    __slots__ = ("data",)
    DATA_FIELD_NUMBER: _ClassVar[int]
    data: bytes
    def __init__(self, data: _Optional[bytes] = ...) -> None: ...

class ReadLogRequest(_message.Message):
    __slots__ = ("from_index", "limit")
    FROM_INDEX_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    from_index: int
    limit: int
    def __init__(self, from_index: _Optional[int] = ..., limit: _Optional[int] = ...) -> None: ...

class ReadLogResponse(_message.Message):
    __slots__ = ("entries", "commit_index", "first_index")
    ENTRIES_FIELD_NUMBER: _ClassVar[int]
    COMMIT_INDEX_FIELD_NUMBER: _ClassVar[int]
    FIRST_INDEX_FIELD_NUMBER: _ClassVar[int]
    entries: _containers.RepeatedCompositeFieldContainer[_raft_pb2.Entry]
    commit_index: int
    first_index: int
    def __init__(self, entries: _Optional[_Iterable[_Union[_raft_pb2.Entry, _Mapping]]] = ..., commit_index: _Optional[int] = ..., first_index: _Optional[int] = ...) -> None: ...

class Alarm(_message.Message):
    __slots__ = ("node", "alarm", "reason", "raised_ms")
    NODE_FIELD_NUMBER: _ClassVar[int]
    ALARM_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    RAISED_MS_FIELD_NUMBER: _ClassVar[int]
    node: str
    alarm: str
    reason: str
    raised_ms: int
    def __init__(self, node: _Optional[str] = ..., alarm: _Optional[str] = ..., reason: _Optional[str] = ..., raised_ms: _Optional[int] = ...) -> None: ...

class ListAlarmsRequest(_message.Message):
    __slots__ = ("stale",)
    STALE_FIELD_NUMBER: _ClassVar[int]
    stale: bool
    def __init__(self, stale: _Optional[bool] = ...) -> None: ...

class ListAlarmsResponse(_message.Message):
    __slots__ = ("alarms",)
    ALARMS_FIELD_NUMBER: _ClassVar[int]
    alarms: _containers.RepeatedCompositeFieldContainer[Alarm]
    def __init__(self, alarms: _Optional[_Iterable[_Union[Alarm, _Mapping]]] = ...) -> None: ...

class StateHashRequest(_message.Message):
    __slots__ = ("check_id",)
    CHECK_ID_FIELD_NUMBER: _ClassVar[int]
    check_id: int
    def __init__(self, check_id: _Optional[int] = ...) -> None: ...

class StateHashResponse(_message.Message):
    __slots__ = ("ready", "index", "digest", "node", "applied_index")
    READY_FIELD_NUMBER: _ClassVar[int]
    INDEX_FIELD_NUMBER: _ClassVar[int]
    DIGEST_FIELD_NUMBER: _ClassVar[int]
    NODE_FIELD_NUMBER: _ClassVar[int]
    APPLIED_INDEX_FIELD_NUMBER: _ClassVar[int]
    ready: bool
    index: int
    digest: bytes
    node: str
    applied_index: int
    def __init__(self, ready: _Optional[bool] = ..., index: _Optional[int] = ..., digest: _Optional[bytes] = ..., node: _Optional[str] = ..., applied_index: _Optional[int] = ...) -> None: ...

class AddNotifySinkRequest(_message.Message):
    __slots__ = ("name", "url", "secret", "events")
    NAME_FIELD_NUMBER: _ClassVar[int]
    URL_FIELD_NUMBER: _ClassVar[int]
    SECRET_FIELD_NUMBER: _ClassVar[int]
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    name: str
    url: str
    secret: bytes
    events: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, name: _Optional[str] = ..., url: _Optional[str] = ..., secret: _Optional[bytes] = ..., events: _Optional[_Iterable[str]] = ...) -> None: ...

class ListNotifySinksRequest(_message.Message):
    __slots__ = ("stale",)
    STALE_FIELD_NUMBER: _ClassVar[int]
    stale: bool
    def __init__(self, stale: _Optional[bool] = ...) -> None: ...

class ListNotifySinksResponse(_message.Message):
    __slots__ = ("sinks",)
    SINKS_FIELD_NUMBER: _ClassVar[int]
    sinks: _containers.RepeatedCompositeFieldContainer[_notify_pb2.NotifySink]
    def __init__(self, sinks: _Optional[_Iterable[_Union[_notify_pb2.NotifySink, _Mapping]]] = ...) -> None: ...

class RemoveNotifySinkRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class RemoveNotifySinkResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class TestNotifySinkRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class TestNotifySinkResponse(_message.Message):
    __slots__ = ("event_id",)
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    event_id: str
    def __init__(self, event_id: _Optional[str] = ...) -> None: ...
