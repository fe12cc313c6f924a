from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class EntryType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ENTRY_TYPE_NORMAL: _ClassVar[EntryType]
    ENTRY_TYPE_NOOP: _ClassVar[EntryType]
    ENTRY_TYPE_CONFIG: _ClassVar[EntryType]
ENTRY_TYPE_NORMAL: EntryType
ENTRY_TYPE_NOOP: EntryType
ENTRY_TYPE_CONFIG: EntryType

class Entry(_message.Message):
    __slots__ = ("term", "index", "type", "data")
    TERM_FIELD_NUMBER: _ClassVar[int]
    INDEX_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    term: int
    index: int
    type: EntryType
    data: bytes
    def __init__(self, term: _Optional[int] = ..., index: _Optional[int] = ..., type: _Optional[_Union[EntryType, str]] = ..., data: _Optional[bytes] = ...) -> None: ...

class VoteRequest(_message.Message):
    __slots__ = ("to", "term", "last_log_index", "last_log_term", "pre_vote", "leadership_transfer")
    FROM_FIELD_NUMBER: _ClassVar[int]
    TO_FIELD_NUMBER: _ClassVar[int]
    TERM_FIELD_NUMBER: _ClassVar[int]
    LAST_LOG_INDEX_FIELD_NUMBER: _ClassVar[int]
    LAST_LOG_TERM_FIELD_NUMBER: _ClassVar[int]
    PRE_VOTE_FIELD_NUMBER: _ClassVar[int]
    LEADERSHIP_TRANSFER_FIELD_NUMBER: _ClassVar[int]
    to: str
    term: int
    last_log_index: int
    last_log_term: int
    pre_vote: bool
    leadership_transfer: bool
    def __init__(self, to: _Optional[str] = ..., term: _Optional[int] = ..., last_log_index: _Optional[int] = ..., last_log_term: _Optional[int] = ..., pre_vote: _Optional[bool] = ..., leadership_transfer: _Optional[bool] = ..., **kwargs) -> None: ...

class VoteResponse(_message.Message):
    __slots__ = ("to", "term", "granted", "pre_vote")
    FROM_FIELD_NUMBER: _ClassVar[int]
    TO_FIELD_NUMBER: _ClassVar[int]
    TERM_FIELD_NUMBER: _ClassVar[int]
    GRANTED_FIELD_NUMBER: _ClassVar[int]
    PRE_VOTE_FIELD_NUMBER: _ClassVar[int]
    to: str
    term: int
    granted: bool
    pre_vote: bool
    def __init__(self, to: _Optional[str] = ..., term: _Optional[int] = ..., granted: _Optional[bool] = ..., pre_vote: _Optional[bool] = ..., **kwargs) -> None: ...

class AppendEntriesRequest(_message.Message):
    __slots__ = ("to", "term", "prev_log_index", "prev_log_term", "entries", "commit", "read_seq", "heartbeat")
    FROM_FIELD_NUMBER: _ClassVar[int]
    TO_FIELD_NUMBER: _ClassVar[int]
    TERM_FIELD_NUMBER: _ClassVar[int]
    PREV_LOG_INDEX_FIELD_NUMBER: _ClassVar[int]
    PREV_LOG_TERM_FIELD_NUMBER: _ClassVar[int]
    ENTRIES_FIELD_NUMBER: _ClassVar[int]
    COMMIT_FIELD_NUMBER: _ClassVar[int]
    READ_SEQ_FIELD_NUMBER: _ClassVar[int]
    HEARTBEAT_FIELD_NUMBER: _ClassVar[int]
    to: str
    term: int
    prev_log_index: int
    prev_log_term: int
    entries: _containers.RepeatedCompositeFieldContainer[Entry]
    commit: int
    read_seq: int
    heartbeat: bool
    def __init__(self, to: _Optional[str] = ..., term: _Optional[int] = ..., prev_log_index: _Optional[int] = ..., prev_log_term: _Optional[int] = ..., entries: _Optional[_Iterable[_Union[Entry, _Mapping]]] = ..., commit: _Optional[int] = ..., read_seq: _Optional[int] = ..., heartbeat: _Optional[bool] = ..., **kwargs) -> None: ...

class AppendEntriesResponse(_message.Message):
    __slots__ = ("to", "term", "success", "match_index", "reject_hint_index", "reject_hint_term", "read_seq", "heartbeat", "features")
    FROM_FIELD_NUMBER: _ClassVar[int]
    TO_FIELD_NUMBER: _ClassVar[int]
    TERM_FIELD_NUMBER: _ClassVar[int]
    SUCCESS_FIELD_NUMBER: _ClassVar[int]
    MATCH_INDEX_FIELD_NUMBER: _ClassVar[int]
    REJECT_HINT_INDEX_FIELD_NUMBER: _ClassVar[int]
    REJECT_HINT_TERM_FIELD_NUMBER: _ClassVar[int]
    READ_SEQ_FIELD_NUMBER: _ClassVar[int]
    HEARTBEAT_FIELD_NUMBER: _ClassVar[int]
    FEATURES_FIELD_NUMBER: _ClassVar[int]
    to: str
    term: int
    success: bool
    match_index: int
    reject_hint_index: int
    reject_hint_term: int
    read_seq: int
    heartbeat: bool
    features: int
    def __init__(self, to: _Optional[str] = ..., term: _Optional[int] = ..., success: _Optional[bool] = ..., match_index: _Optional[int] = ..., reject_hint_index: _Optional[int] = ..., reject_hint_term: _Optional[int] = ..., read_seq: _Optional[int] = ..., heartbeat: _Optional[bool] = ..., features: _Optional[int] = ..., **kwargs) -> None: ...

class InstallSnapshotChunk(_message.Message):
    __slots__ = ("to", "term", "last_included_index", "last_included_term", "config", "offset", "data", "done", "crc32c")
    FROM_FIELD_NUMBER: _ClassVar[int]
    TO_FIELD_NUMBER: _ClassVar[int]
    TERM_FIELD_NUMBER: _ClassVar[int]
    LAST_INCLUDED_INDEX_FIELD_NUMBER: _ClassVar[int]
    LAST_INCLUDED_TERM_FIELD_NUMBER: _ClassVar[int]
    CONFIG_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    DONE_FIELD_NUMBER: _ClassVar[int]
    CRC32C_FIELD_NUMBER: _ClassVar[int]
    to: str
    term: int
    last_included_index: int
    last_included_term: int
    config: bytes
    offset: int
    data: bytes
    done: bool
    crc32c: int
    def __init__(self, to: _Optional[str] = ..., term: _Optional[int] = ..., last_included_index: _Optional[int] = ..., last_included_term: _Optional[int] = ..., config: _Optional[bytes] = ..., offset: _Optional[int] = ..., data: _Optional[bytes] = ..., done: _Optional[bool] = ..., crc32c: _Optional[int] = ..., **kwargs) -> None: ...

class InstallSnapshotResponse(_message.Message):
    __slots__ = ("term", "success", "error", "match_index")
    FROM_FIELD_NUMBER: _ClassVar[int]
    TERM_FIELD_NUMBER: _ClassVar[int]
    SUCCESS_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    MATCH_INDEX_FIELD_NUMBER: _ClassVar[int]
    term: int
    success: bool
    error: str
    match_index: int
    def __init__(self, term: _Optional[int] = ..., success: _Optional[bool] = ..., error: _Optional[str] = ..., match_index: _Optional[int] = ..., **kwargs) -> None: ...

class TimeoutNowRequest(_message.Message):
    __slots__ = ("to", "term")
    FROM_FIELD_NUMBER: _ClassVar[int]
    TO_FIELD_NUMBER: _ClassVar[int]
    TERM_FIELD_NUMBER: _ClassVar[int]
    to: str
    term: int
    def __init__(self, to: _Optional[str] = ..., term: _Optional[int] = ..., **kwargs) -> None: ...

class TimeoutNowResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ConfigState(_message.Message):
    __slots__ = ("voters", "learners")
    VOTERS_FIELD_NUMBER: _ClassVar[int]
    LEARNERS_FIELD_NUMBER: _ClassVar[int]
    voters: _containers.RepeatedCompositeFieldContainer[Member]
    learners: _containers.RepeatedCompositeFieldContainer[Member]
    def __init__(self, voters: _Optional[_Iterable[_Union[Member, _Mapping]]] = ..., learners: _Optional[_Iterable[_Union[Member, _Mapping]]] = ...) -> None: ...

class Member(_message.Message):
    __slots__ = ("id", "address")
    ID_FIELD_NUMBER: _ClassVar[int]
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    id: str
    address: str
    def __init__(self, id: _Optional[str] = ..., address: _Optional[str] = ...) -> None: ...

class ConfigChange(_message.Message):
    __slots__ = ("kind", "member")
    class Kind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        KIND_UNSPECIFIED: _ClassVar[ConfigChange.Kind]
        KIND_ADD_LEARNER: _ClassVar[ConfigChange.Kind]
        KIND_PROMOTE: _ClassVar[ConfigChange.Kind]
        KIND_REMOVE: _ClassVar[ConfigChange.Kind]
    KIND_UNSPECIFIED: ConfigChange.Kind
    KIND_ADD_LEARNER: ConfigChange.Kind
    KIND_PROMOTE: ConfigChange.Kind
    KIND_REMOVE: ConfigChange.Kind
    KIND_FIELD_NUMBER: _ClassVar[int]
    MEMBER_FIELD_NUMBER: _ClassVar[int]
    kind: ConfigChange.Kind
    member: Member
    def __init__(self, kind: _Optional[_Union[ConfigChange.Kind, str]] = ..., member: _Optional[_Union[Member, _Mapping]] = ...) -> None: ...
