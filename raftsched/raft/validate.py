"""What a Raft message must satisfy whoever sends it and whatever the receiver's state: ranges of
terms and indexes, and the shape of the log it describes (issue 14, SPEC promise 15).

`check_message` runs twice: in the transport on every message received (junk never reaches the
driver, and an append stream that carries it is ended), and in the core's `step` (the simulation
has no transport; defence in depth). Checks that need the receiver's state (membership, commit
against the log) are the core's (`RaftCore._refusal_for`).

Limits. Terms and indexes stop at MAX_TERM = MAX_INDEX = 2**53 - 1, the largest integer that
every consumer of our numbers holds exactly: uint64 and int64 on the wire and on disk, float64 in
Prometheus gauges and in JSON readers (JavaScript, jq). `term + 1` and `index + n` for any batch
stay far inside uint64, so no conversion or encoding can overflow. At a million elections or
entries per second the space lasts 285 years. A term may not jump more than MAX_TERM_JUMP beyond
the receiver's (checked in the core): terms grow by one per election, so a million elections
missed by a node is far beyond any real outage, while a forged message can no longer spend the
whole term space at once.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

from raftsched.raft.messages import (
    AppendRequest,
    AppendResponse,
    Entry,
    Heartbeat,
    HeartbeatResponse,
    Message,
    SnapshotRequest,
    SnapshotResponse,
    TimeoutNow,
    VoteRequest,
    VoteResponse,
)
from raftsched.raft.refusals import Reason, Refusal

MAX_TERM: Final = 2**53 - 1
MAX_INDEX: Final = 2**53 - 1
MAX_TERM_JUMP: Final = 2**20
MAX_ID_CHARS: Final = 128  # node ids are short names; a longer one is junk

Problem = tuple[Reason, str]


def refusal(msg: Message, problem: Problem) -> Refusal:
    return Refusal(problem[0], type(msg).__name__, msg.frm, msg.term, problem[1])


def check_message(msg: Message) -> Problem | None:
    """The first problem a receiver can see in `msg` without its own state, or None."""
    if not 0 < len(msg.frm) <= MAX_ID_CHARS:
        return Reason.NOT_A_MEMBER, f"sender id of {len(msg.frm)} characters"
    if not 0 < len(msg.to) <= MAX_ID_CHARS:
        return Reason.WRONG_RECIPIENT, f"recipient id of {len(msg.to)} characters"
    check = _CHECKS.get(type(msg))
    return check(msg) if check is not None else None


# --- ranges ------------------------------------------------------------------------------------


def _terms(*terms: int) -> Problem | None:
    if min(terms) >= 0 and max(terms) <= MAX_TERM:  # the common case, in two builtin calls
        return None
    bad = next(t for t in terms if not 0 <= t <= MAX_TERM)
    return Reason.TERM_OUT_OF_RANGE, f"term {bad} outside 0..{MAX_TERM}"


def _indexes(*indexes: int) -> Problem | None:
    if min(indexes) >= 0 and max(indexes) <= MAX_INDEX:
        return None
    bad = next(i for i in indexes if not 0 <= i <= MAX_INDEX)
    return Reason.INDEX_OUT_OF_RANGE, f"index {bad} outside 0..{MAX_INDEX}"


def _position(what: str, index: int, term: int, msg_term: int) -> Problem | None:
    """An (index, term) pair some log holds, named in a message of `msg_term`: index 0 alone has
    term 0, and no log entry is from a later term than the message describing it."""
    if (index == 0) != (term == 0):
        return Reason.BAD_LOG_TERMS, f"{what} index {index} with term {term}"
    if term > msg_term:
        return Reason.BAD_LOG_TERMS, f"{what} term {term} beyond the message's term {msg_term}"
    return None


# --- per message type --------------------------------------------------------------------------


def _vote_request(m: VoteRequest) -> Problem | None:
    return (
        _terms(m.term, m.last_log_term)
        or _indexes(m.last_log_index)
        or _position("last log", m.last_log_index, m.last_log_term, m.term)
    )


def _append_request(m: AppendRequest) -> Problem | None:
    return (
        _terms(m.term, m.prev_term)
        or _indexes(m.prev_index, m.commit, m.prev_index + len(m.entries))
        or _position("previous", m.prev_index, m.prev_term, m.term)
        or _entries(m.entries, m.prev_index, m.prev_term, m.term)
    )


def _entries(entries: tuple[Entry, ...], prev_index: int, prev_term: int, msg_term: int) -> Problem | None:
    """Entries follow `prev_index` without a gap, with terms from `prev_term` up to the message's."""
    last_term = max(prev_term, 1)
    for expected, entry in enumerate(entries, prev_index + 1):
        if entry.index != expected:
            return Reason.ENTRIES_NOT_CONTIGUOUS, f"entry index {entry.index} where {expected} follows"
        if entry.term < last_term:
            return Reason.BAD_LOG_TERMS, f"entry {entry.index} has term {entry.term} after term {last_term}"
        last_term = entry.term
    if entries and last_term > msg_term:
        return Reason.BAD_LOG_TERMS, f"entry term {last_term} beyond the message's term {msg_term}"
    return None


def _heartbeat(m: Heartbeat) -> Problem | None:
    return (
        _terms(m.term, m.commit_term)
        or _indexes(m.commit, m.read_seq)
        or _position("commit", m.commit, m.commit_term, m.term)
    )


def _append_response(m: AppendResponse) -> Problem | None:
    problem = _terms(m.term, m.hint_term) or _indexes(m.match_index, m.reject_index, m.hint_index)
    if problem is None and m.hint_term > m.term:
        return Reason.BAD_LOG_TERMS, f"hint term {m.hint_term} beyond the message's term {m.term}"
    return problem


def _snapshot_request(m: SnapshotRequest) -> Problem | None:
    meta = m.meta
    return _terms(m.term, meta.term) or _indexes(meta.index) or _position("snapshot", meta.index, meta.term, m.term)


def _term_only(m: VoteResponse | TimeoutNow) -> Problem | None:
    return _terms(m.term)


def _heartbeat_response(m: HeartbeatResponse) -> Problem | None:
    return _terms(m.term) or _indexes(m.read_seq)


def _snapshot_response(m: SnapshotResponse) -> Problem | None:
    return _terms(m.term) or _indexes(m.match_index)


_CHECKS: dict[type, Callable[[Any], Problem | None]] = {
    VoteRequest: _vote_request,
    VoteResponse: _term_only,
    AppendRequest: _append_request,
    AppendResponse: _append_response,
    Heartbeat: _heartbeat,
    HeartbeatResponse: _heartbeat_response,
    TimeoutNow: _term_only,
    SnapshotRequest: _snapshot_request,
    SnapshotResponse: _snapshot_response,
}
