"""Every value that crosses the Raft core's boundary: log entries, hard state, messages, the ready.

Frozen dataclasses with slots; the transport converts them to and from protobuf, so the core never
imports it. One tagged union, `Message`, covers everything nodes send each other.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum

NO_NODE = ""  # "no vote" / "no known leader"


class EntryType(IntEnum):
    NORMAL = 0  # an application command (opaque bytes)
    NOOP = 1  # appended by a new leader: commits earlier terms' entries (§5.4.2)
    CONFIG = 2  # a membership change, encoded by `raftsched.raft.config.encode_change`


@dataclass(frozen=True, slots=True)
class Entry:
    term: int
    index: int
    type: EntryType = EntryType.NORMAL
    data: bytes = b""


@dataclass(frozen=True, slots=True)
class HardState:
    """What must be durable before any message that depends on it is sent (§3.8 of the thesis)."""

    term: int = 0
    vote: str = NO_NODE
    commit: int = 0


@dataclass(frozen=True, slots=True)
class ConfigState:
    """The membership: voters elect and commit; learners only receive the log."""

    voters: frozenset[str] = frozenset()
    learners: frozenset[str] = frozenset()

    def members(self) -> frozenset[str]:
        return self.voters | self.learners


@dataclass(frozen=True, slots=True)
class SnapshotMeta:
    """Describes a snapshot: the state machine as of `index`, and the membership then."""

    index: int = 0
    term: int = 0
    config: ConfigState = field(default_factory=ConfigState)


class Role(IntEnum):
    FOLLOWER = 1
    PRE_CANDIDATE = 2
    CANDIDATE = 3
    LEADER = 4


@dataclass(frozen=True, slots=True)
class SoftState:
    """Volatile state the driver may want to observe; never persisted."""

    leader: str
    role: Role
    term: int


# --- messages --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class VoteRequest:
    frm: str
    to: str
    term: int  # for a pre-vote: the term the candidate would campaign in
    last_log_index: int
    last_log_term: int
    pre_vote: bool = False
    transfer: bool = False  # sent on the leader's TimeoutNow: voters ignore their leader lease


@dataclass(frozen=True, slots=True)
class VoteResponse:
    frm: str
    to: str
    term: int
    granted: bool
    pre_vote: bool = False


@dataclass(frozen=True, slots=True)
class AppendRequest:
    frm: str
    to: str
    term: int
    prev_index: int
    prev_term: int
    entries: tuple[Entry, ...]
    commit: int


@dataclass(frozen=True, slots=True)
class AppendResponse:
    frm: str
    to: str
    term: int
    success: bool
    match_index: int  # on success: the last index now known to match the leader's log
    reject_index: int = 0  # on rejection: the prev_index that did not match
    hint_index: int = 0  # on rejection: where the leader should probe next (by term)
    hint_term: int = 0


@dataclass(frozen=True, slots=True)
class Heartbeat:
    frm: str
    to: str
    term: int
    commit: int  # capped at the follower's known match, so it never commits what it lacks
    read_seq: int = 0  # the leadership round this heartbeat confirms (ReadIndex)
    # The term of the leader's entry at `commit` (0 with commit 0): a follower whose entry there has
    # the same term holds the leader's log up to it (log matching, §5.3), so it may commit that far.
    commit_term: int = 0


@dataclass(frozen=True, slots=True)
class HeartbeatResponse:
    frm: str
    to: str
    term: int
    read_seq: int = 0


@dataclass(frozen=True, slots=True)
class TimeoutNow:
    """Leadership transfer: the target campaigns at once, without pre-vote."""

    frm: str
    to: str
    term: int


@dataclass(frozen=True, slots=True)
class SnapshotRequest:
    """The leader asks the driver to stream its snapshot; on the follower it arrives once the
    data has been received and verified, and the core decides whether to install it."""

    frm: str
    to: str
    term: int
    meta: SnapshotMeta


@dataclass(frozen=True, slots=True)
class SnapshotResponse:
    frm: str
    to: str
    term: int
    success: bool
    match_index: int


@dataclass(frozen=True, slots=True)
class Unreachable:
    """Local report from the transport: a message to `frm` could not be delivered."""

    frm: str
    to: str
    term: int = 0


@dataclass(frozen=True, slots=True)
class LeaderLost:
    """Local report from the transport: the stream on which `frm` sent us appends closed. A
    killed process's connections close at once, so this is how a crashed leader usually shows."""

    frm: str
    to: str
    term: int = 0


@dataclass(frozen=True, slots=True)
class SnapshotStatus:
    """Local report from the transport: streaming a snapshot to `frm` finished or failed."""

    frm: str
    to: str
    term: int = 0
    failed: bool = False


Message = (
    VoteRequest
    | VoteResponse
    | AppendRequest
    | AppendResponse
    | Heartbeat
    | HeartbeatResponse
    | TimeoutNow
    | SnapshotRequest
    | SnapshotResponse
    | Unreachable
    | LeaderLost
    | SnapshotStatus
)


@dataclass(frozen=True, slots=True)
class ReadState:
    """A ReadIndex request released: serve the read once `index` has been applied."""

    ctx: int
    index: int


@dataclass(frozen=True, slots=True)
class Ready:
    """One numbered batch of work for the driver, to be done in this order:

    1. send `messages` (may go at once, even before persisting);
    2. persist `snapshot` (if any), then `entries` (replacing any stored suffix from the first
       entry's index on), then `hard_state` (if any) in one synced write;
    3. send `persisted_messages` (votes and append responses depend on that write);
    4. apply `committed` in order and serve `read_states` once applied reaches their index;
    5. call `advance(ready)`.
    """

    number: int
    soft_state: SoftState | None
    hard_state: HardState | None
    entries: tuple[Entry, ...]
    snapshot: SnapshotMeta | None
    messages: tuple[Message, ...]
    persisted_messages: tuple[Message, ...]
    committed: tuple[Entry, ...]
    read_states: tuple[ReadState, ...]

    def is_empty(self) -> bool:
        return not (
            self.soft_state
            or self.hard_state
            or self.entries
            or self.snapshot
            or self.messages
            or self.persisted_messages
            or self.committed
            or self.read_states
        )
