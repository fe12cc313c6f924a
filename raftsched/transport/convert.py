"""Conversion between the Raft core's messages (`raftsched.raft.messages`) and protobuf.

The wire has fewer message types than the core: appends and heartbeats share
`AppendEntriesRequest` / `AppendEntriesResponse`, told apart by the `heartbeat` flag, and a
rejected append carries its `reject_index` in `match_index` (a rejection has no match to report,
so the field is free; this keeps the wire contract unchanged).

A heartbeat carries the term of the leader's entry at its commit index in `prev_log_term` (a
heartbeat has no previous entry, so the field is free): a follower commits from a heartbeat only
when its own entry there has that term (see `RaftCore._heartbeat_refusal`).

Conversion checks nothing but what protobuf cannot say (entry types): every value the wire can
carry (uint64) converts exactly, and what is out of range for Raft (`raftsched.raft.validate`) is
refused by the service after conversion. Outbound values come from the core, which never exceeds
`MAX_TERM` / `MAX_INDEX` (2**53 - 1), so `to_pb` cannot overflow a uint64 field.

Protobuf's field `from` is a Python keyword: it is set through `**{"from": ...}` and read with
`getattr(msg, "from")`.

Entries are the hot path (every replicated command crosses here twice), so they are converted
with comprehensions, positional dataclass construction, `RepeatedCompositeField.add` (measured
about 1.7x faster than building `pb.Entry` objects and copying them in) and a tuple lookup for the
entry type instead of calling the enum.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from raftsched import features
from raftsched.raft.messages import (
    AppendRequest,
    AppendResponse,
    ConfigState,
    Entry,
    EntryType,
    Heartbeat,
    HeartbeatResponse,
    TimeoutNow,
    VoteRequest,
    VoteResponse,
)
from raftsched.v1 import raft_pb2 as pb

__all__ = [
    "ConversionError",
    "append_request_from_pb",
    "append_request_to_pb",
    "append_response_from_pb",
    "append_response_to_pb",
    "config_from_pb",
    "config_to_pb",
    "entries_from_pb",
    "entries_to_pb",
    "heartbeat_response_to_pb",
    "heartbeat_to_pb",
    "timeout_now_from_pb",
    "timeout_now_to_pb",
    "vote_request_from_pb",
    "vote_request_to_pb",
    "vote_response_from_pb",
    "vote_response_to_pb",
]

# Indexed by the wire value: `_ENTRY_TYPES[3]` raises IndexError for a type this build lacks.
_ENTRY_TYPES: tuple[EntryType, ...] = tuple(sorted(EntryType))
assert all(t == i for i, t in enumerate(_ENTRY_TYPES)), "EntryType values must be 0..n-1"


class ConversionError(ValueError):
    """A protobuf message that has no meaning for the core (for example an unknown entry type)."""


def _from(frm: str) -> dict[str, Any]:
    """Keyword arguments setting the `from` field (typed loosely: mypy cannot check `**{"from": ..}`)."""
    return {"from": frm}


def _frm(msg: Any) -> str:
    frm: str = getattr(msg, "from")
    return frm


# --- entries ---------------------------------------------------------------------------------


def entries_to_pb(entries: Iterable[Entry], out: Any) -> None:
    """Append `entries` to the repeated field `out` (for example `request.entries`)."""
    add = out.add
    for e in entries:
        add(term=e.term, index=e.index, type=e.type, data=e.data)


def entries_from_pb(entries: Iterable[pb.Entry]) -> tuple[Entry, ...]:
    types = _ENTRY_TYPES
    try:
        return tuple([Entry(e.term, e.index, types[e.type], e.data) for e in entries])
    except IndexError:
        bad = sorted({e.type for e in entries if e.type >= len(types)})
        raise ConversionError(f"unknown entry type(s) {bad}: is this node older than its peers?") from None


# --- votes -----------------------------------------------------------------------------------


def vote_request_to_pb(m: VoteRequest) -> pb.VoteRequest:
    return pb.VoteRequest(
        **_from(m.frm),
        to=m.to,
        term=m.term,
        last_log_index=m.last_log_index,
        last_log_term=m.last_log_term,
        pre_vote=m.pre_vote,
        leadership_transfer=m.transfer,
    )


def vote_request_from_pb(p: pb.VoteRequest) -> VoteRequest:
    return VoteRequest(
        frm=_frm(p),
        to=p.to,
        term=p.term,
        last_log_index=p.last_log_index,
        last_log_term=p.last_log_term,
        pre_vote=p.pre_vote,
        transfer=p.leadership_transfer,
    )


def vote_response_to_pb(m: VoteResponse) -> pb.VoteResponse:
    return pb.VoteResponse(**_from(m.frm), to=m.to, term=m.term, granted=m.granted, pre_vote=m.pre_vote)


def vote_response_from_pb(p: pb.VoteResponse) -> VoteResponse:
    return VoteResponse(frm=_frm(p), to=p.to, term=p.term, granted=p.granted, pre_vote=p.pre_vote)


# --- appends and heartbeats ------------------------------------------------------------------


def append_request_to_pb(m: AppendRequest | Heartbeat) -> pb.AppendEntriesRequest:
    """Both leader->follower messages travel as `AppendEntriesRequest` on the append stream."""
    if type(m) is Heartbeat:
        return heartbeat_to_pb(m)
    assert isinstance(m, AppendRequest)
    p = pb.AppendEntriesRequest(
        **_from(m.frm),
        to=m.to,
        term=m.term,
        prev_log_index=m.prev_index,
        prev_log_term=m.prev_term,
        commit=m.commit,
    )
    entries_to_pb(m.entries, p.entries)
    return p


def heartbeat_to_pb(m: Heartbeat) -> pb.AppendEntriesRequest:
    return pb.AppendEntriesRequest(
        **_from(m.frm),
        to=m.to,
        term=m.term,
        commit=m.commit,
        prev_log_term=m.commit_term,
        read_seq=m.read_seq,
        heartbeat=True,
    )


def append_request_from_pb(p: pb.AppendEntriesRequest) -> AppendRequest | Heartbeat:
    if p.heartbeat:
        return Heartbeat(
            frm=_frm(p), to=p.to, term=p.term, commit=p.commit, read_seq=p.read_seq, commit_term=p.prev_log_term
        )
    return AppendRequest(
        frm=_frm(p),
        to=p.to,
        term=p.term,
        prev_index=p.prev_log_index,
        prev_term=p.prev_log_term,
        entries=entries_from_pb(p.entries),
        commit=p.commit,
    )


def append_response_to_pb(m: AppendResponse | HeartbeatResponse) -> pb.AppendEntriesResponse:
    """Both follower->leader replies travel back on the append stream they answer."""
    if type(m) is HeartbeatResponse:
        return heartbeat_response_to_pb(m)
    assert isinstance(m, AppendResponse)
    return pb.AppendEntriesResponse(
        **_from(m.frm),
        to=m.to,
        term=m.term,
        success=m.success,
        # A rejection has no match to report: the field carries the rejected prev_index instead.
        match_index=m.match_index if m.success else m.reject_index,
        reject_hint_index=m.hint_index,
        reject_hint_term=m.hint_term,
        features=features.SUPPORTED,
    )


def heartbeat_response_to_pb(m: HeartbeatResponse) -> pb.AppendEntriesResponse:
    return pb.AppendEntriesResponse(**_from(m.frm), to=m.to, term=m.term, read_seq=m.read_seq, heartbeat=True,
                                    features=features.SUPPORTED)


def append_response_from_pb(p: pb.AppendEntriesResponse) -> AppendResponse | HeartbeatResponse:
    if p.heartbeat:
        return HeartbeatResponse(frm=_frm(p), to=p.to, term=p.term, read_seq=p.read_seq)
    if p.success:
        return AppendResponse(frm=_frm(p), to=p.to, term=p.term, success=True, match_index=p.match_index)
    return AppendResponse(
        frm=_frm(p),
        to=p.to,
        term=p.term,
        success=False,
        match_index=0,
        reject_index=p.match_index,
        hint_index=p.reject_hint_index,
        hint_term=p.reject_hint_term,
    )


# --- leadership transfer ---------------------------------------------------------------------


def timeout_now_to_pb(m: TimeoutNow) -> pb.TimeoutNowRequest:
    return pb.TimeoutNowRequest(**_from(m.frm), to=m.to, term=m.term)


def timeout_now_from_pb(p: pb.TimeoutNowRequest) -> TimeoutNow:
    return TimeoutNow(frm=_frm(p), to=p.to, term=p.term)


# --- membership ------------------------------------------------------------------------------


def config_to_pb(config: ConfigState, addresses: Mapping[str, str]) -> pb.ConfigState:
    """Members are sorted by id so equal configurations encode to equal bytes.

    A member without a known address is encoded with an empty one: the id is what the core
    decides on, and the address can be learned later from the membership change that added it.
    """
    return pb.ConfigState(
        voters=[pb.Member(id=i, address=addresses.get(i, "")) for i in sorted(config.voters)],
        learners=[pb.Member(id=i, address=addresses.get(i, "")) for i in sorted(config.learners)],
    )


def config_from_pb(p: pb.ConfigState) -> tuple[ConfigState, dict[str, str]]:
    """Returns the membership and the address of every member (id -> address)."""
    config = ConfigState(
        voters=frozenset(m.id for m in p.voters),
        learners=frozenset(m.id for m in p.learners),
    )
    if config.voters & config.learners:
        raise ConversionError(f"members both voter and learner: {sorted(config.voters & config.learners)}")
    addresses = {m.id: m.address for m in (*p.voters, *p.learners)}
    return config, addresses
