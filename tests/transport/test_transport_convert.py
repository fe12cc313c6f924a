"""Round trips between the core's messages and protobuf, through the wire bytes."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

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
from raftsched.transport import convert
from raftsched.v1 import raft_pb2 as pb

U64 = st.integers(min_value=0, max_value=2**64 - 1)
IDS = st.text(min_size=1, max_size=8)

entries = st.builds(Entry, term=U64, index=U64, type=st.sampled_from(EntryType), data=st.binary(max_size=64))


def wire(p: Any) -> Any:
    """Serialize and parse again, so a round trip also covers the encoding."""
    return type(p).FromString(p.SerializeToString())


@given(st.lists(entries, max_size=50))
def test_entries_round_trip(es: list[Entry]) -> None:
    req = pb.AppendEntriesRequest()
    convert.entries_to_pb(es, req.entries)
    back = convert.entries_from_pb(wire(req).entries)
    assert back == tuple(es)
    assert all(type(e.type) is EntryType for e in back)


@given(st.builds(AppendRequest, frm=IDS, to=IDS, term=U64, prev_index=U64, prev_term=U64,
                 entries=st.lists(entries, max_size=20).map(tuple), commit=U64))  # fmt: skip
def test_append_request_round_trip(m: AppendRequest) -> None:
    p = wire(convert.append_request_to_pb(m))
    assert not p.heartbeat
    assert convert.append_request_from_pb(p) == m


@given(st.builds(Heartbeat, frm=IDS, to=IDS, term=U64, commit=U64, read_seq=U64))
def test_heartbeat_round_trip(m: Heartbeat) -> None:
    p = wire(convert.append_request_to_pb(m))
    assert p.heartbeat and p.commit == m.commit and p.read_seq == m.read_seq
    assert convert.append_request_from_pb(p) == m


@given(st.builds(VoteRequest, frm=IDS, to=IDS, term=U64, last_log_index=U64, last_log_term=U64,
                 pre_vote=st.booleans(), transfer=st.booleans()))  # fmt: skip
def test_vote_request_round_trip(m: VoteRequest) -> None:
    p = wire(convert.vote_request_to_pb(m))
    assert getattr(p, "from") == m.frm and p.leadership_transfer == m.transfer
    assert convert.vote_request_from_pb(p) == m


@given(st.builds(VoteResponse, frm=IDS, to=IDS, term=U64, granted=st.booleans(), pre_vote=st.booleans()))
def test_vote_response_round_trip(m: VoteResponse) -> None:
    assert convert.vote_response_from_pb(wire(convert.vote_response_to_pb(m))) == m


@given(st.builds(AppendResponse, frm=IDS, to=IDS, term=U64, success=st.just(True), match_index=U64))
def test_append_success_round_trip(m: AppendResponse) -> None:
    assert convert.append_response_from_pb(wire(convert.append_response_to_pb(m))) == m


@given(st.builds(AppendResponse, frm=IDS, to=IDS, term=U64, success=st.just(False), match_index=st.just(0),
                 reject_index=U64, hint_index=U64, hint_term=U64))  # fmt: skip
def test_append_rejection_round_trip(m: AppendResponse) -> None:
    p = wire(convert.append_response_to_pb(m))
    # The wire has no reject_index field: a rejection carries it in match_index.
    assert p.match_index == m.reject_index
    assert (p.reject_hint_index, p.reject_hint_term) == (m.hint_index, m.hint_term)
    assert convert.append_response_from_pb(p) == m


@given(st.builds(HeartbeatResponse, frm=IDS, to=IDS, term=U64, read_seq=U64))
def test_heartbeat_response_round_trip(m: HeartbeatResponse) -> None:
    p = wire(convert.append_response_to_pb(m))
    assert p.heartbeat
    assert convert.append_response_from_pb(p) == m


@given(st.builds(TimeoutNow, frm=IDS, to=IDS, term=U64))
def test_timeout_now_round_trip(m: TimeoutNow) -> None:
    assert convert.timeout_now_from_pb(wire(convert.timeout_now_to_pb(m))) == m


def test_config_round_trip_with_addresses() -> None:
    config = ConfigState(voters=frozenset({"n1", "n2", "n3"}), learners=frozenset({"n4"}))
    addresses = {"n1": "h1:7001", "n2": "h2:7002", "n3": "h3:7003", "n4": "h4:7004", "gone": "h9:1"}
    p = wire(convert.config_to_pb(config, addresses))
    assert [m.id for m in p.voters] == ["n1", "n2", "n3"]  # sorted: equal configs, equal bytes
    back, back_addresses = convert.config_from_pb(p)
    assert back == config
    assert back_addresses == {i: addresses[i] for i in config.members()}


def test_config_member_without_address_encodes_empty() -> None:
    p = convert.config_to_pb(ConfigState(voters=frozenset({"n1"})), {})
    assert convert.config_from_pb(p) == (ConfigState(voters=frozenset({"n1"})), {"n1": ""})


def test_config_voter_and_learner_at_once_is_refused() -> None:
    p = pb.ConfigState(voters=[pb.Member(id="n1")], learners=[pb.Member(id="n1")])
    with pytest.raises(convert.ConversionError, match="n1"):
        convert.config_from_pb(p)


def test_unknown_entry_type_is_a_conversion_error() -> None:
    req = pb.AppendEntriesRequest()
    req.entries.add(term=1, index=1, type=7)  # a value from a newer build
    with pytest.raises(convert.ConversionError, match=r"\[7\]"):
        convert.entries_from_pb(wire(req).entries)
