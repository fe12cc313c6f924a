"""Issue 14's Raft findings, replayed against a real 3-node cluster (insecure mode, 127.0.0.1): a
stranger calls the Raft service with the generated stubs, as anyone who reaches the port could.

1. RequestVote with term 2**64-1 and leadership_transfer, sent to the leader: it used to be granted,
   every node moved to that term, `term + 1` overflowed in the transport, and no leader was ever
   elected again, even after a restart.
2. AppendEntries in the leader's name with entries at gapped indexes, then a heartbeat with commit
   2**64-1: the follower committed past its log, stopped applying and failed ReadLog with INTERNAL.
3. Appends in the leader's name carrying entries no correct leader sends (unknown entry types,
   terms from the future), and bytes that are no protobuf message at all.

Each test checks the refusal (status and the `raftsched_raft_messages_refused_total` series), then
that the cluster still elects, commits and applies on every node, and that it does so again after
every node restarts.
"""

from __future__ import annotations

import re
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import pytest

from raftsched.testing.procs import free_port_range
from raftsched.v1 import admin_pb2, raft_pb2, raft_pb2_grpc

from .cluster import FAST, Cluster, wait_for

pytestmark = pytest.mark.integration

U64 = 2**64 - 1
MAX = 2**53 - 1  # raftsched.raft.validate.MAX_TERM / MAX_INDEX
CALL_TIMEOUT = 5.0
_REFUSED = re.compile(r'^raftsched_raft_messages_refused_total\{reason="([a-z-]+)"\} ([0-9.e+]+)$', re.M)


@dataclass
class MetricsCluster(Cluster):
    """A cluster whose nodes also serve Prometheus metrics, each on its own port."""

    metrics: dict[str, str] = field(init=False, default_factory=dict)

    def __post_init__(self) -> None:
        super().__post_init__()
        ports = free_port_range(self.size)
        self.metrics = {nid: f"127.0.0.1:{port}" for nid, port in zip(self.ids, ports, strict=True)}

    def start(self, nid: str) -> None:
        flags = self.node_flags
        self.node_flags = (*flags, "--metrics-listen", self.metrics[nid])
        try:
            super().start(nid)
        finally:
            self.node_flags = flags

    def refused(self, nid: str) -> dict[str, float]:
        """Node `nid`'s refused Raft messages by reason, scraped from its /metrics."""
        with urllib.request.urlopen(f"http://{self.metrics[nid]}/metrics", timeout=2) as response:
            text = response.read().decode()
        return {reason: float(count) for reason, count in _REFUSED.findall(text)}


@pytest.fixture
def cluster(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[MetricsCluster]:
    c = MetricsCluster(tmp_path / "cluster", timing=FAST)
    try:
        c.start_all()
        c.wait_leader(30)
        yield c
    finally:
        rep = getattr(request.node, "rep_call", None)
        if rep is None or rep.failed:
            print(c.logs())
        c.close()


# --- talking Raft as a stranger ------------------------------------------------------------------


def _stub(c: Cluster, nid: str) -> tuple[grpc.Channel, raft_pb2_grpc.RaftStub]:
    channel = grpc.insecure_channel(c.addr[nid])
    return channel, raft_pb2_grpc.RaftStub(channel)  # type: ignore[no-untyped-call]


def request_vote(c: Cluster, nid: str, **fields: object) -> grpc.RpcError:
    """Send a VoteRequest to `nid`; it must fail. Returns the error."""
    channel, stub = _stub(c, nid)
    with channel, pytest.raises(grpc.RpcError) as err:
        stub.RequestVote(raft_pb2.VoteRequest(to=nid, **fields), timeout=CALL_TIMEOUT)  # type: ignore[arg-type]
    return err.value


def append_entries(c: Cluster, nid: str, *requests: raft_pb2.AppendEntriesRequest) -> tuple[list[object], object]:
    """Stream `requests` to `nid` and read until the stream ends; returns (replies, status code)."""
    channel, stub = _stub(c, nid)
    with channel:
        call = stub.AppendEntries(iter(requests), timeout=CALL_TIMEOUT)
        replies: list[object] = []
        try:
            replies.extend(call)
        except grpc.RpcError as err:
            return replies, err.code()  # type: ignore[attr-defined]
        return replies, call.code()


MARK = 7_777  # the read_seq of this module's hand-made heartbeats


def _msg(frm: str, to: str, **fields: object) -> raft_pb2.AppendEntriesRequest:
    return raft_pb2.AppendEntriesRequest(to=to, **{"from": frm}, **fields)  # type: ignore[arg-type]


def _refused_status(err: grpc.RpcError, code: grpc.StatusCode, reason: str) -> None:
    assert err.code() == code, err  # type: ignore[attr-defined]
    assert reason in (err.details() or ""), err.details()  # type: ignore[attr-defined]


# --- what must still hold ------------------------------------------------------------------------


def assert_healthy(c: Cluster, what: str) -> str:
    """One leader; every node healthy, in a sane term, committed within its log and applying it
    all; a new job commits and every node applies it; ReadLog answers on every node."""
    leader = c.wait_leader(30)
    job = c.submit(handler="noop", name=what)
    for nid in c.ids:
        c.wait_caught_up(nid, timeout=30)
    for nid, st in c.statuses(c.ids).items():
        assert st.healthy, f"{what}: {nid} unhealthy: {st}"
        assert 0 < st.term < 1000, f"{what}: {nid} in term {st.term}"
        assert st.commit_index <= st.last_log_index, f"{what}: {nid} committed past its log: {st}"
        log = c.client(nid).read_log(max(st.commit_index - 5, 0), 10)
        assert log.commit_index >= 1 and log.entries, f"{what}: ReadLog on {nid}: {log}"
    assert c.get(job.id).id == job.id
    return leader


def restart_all(c: Cluster) -> None:
    for nid in c.ids:
        c.kill(nid)
    c.start_all()


def _status(c: Cluster, nid: str) -> admin_pb2.NodeStatus:
    return c.local_status(nid)


def _wait_refused(c: MetricsCluster, nid: str, reasons: dict[str, int]) -> dict[str, float]:
    def enough() -> dict[str, float] | None:
        counts = c.refused(nid)
        return counts if all(counts.get(r, 0) >= n for r, n in reasons.items()) else None

    return wait_for(enough, 10, f"{nid} counts refusals {reasons}")


# --- the findings --------------------------------------------------------------------------------


def test_a_huge_term_vote_with_leadership_transfer_changes_no_term(cluster: MetricsCluster) -> None:
    c = cluster
    leader = c.wait_leader()
    term = _status(c, leader).term
    for nid in c.ids:  # the leader, and every follower too
        forged = next(n for n in c.ids if n != nid)  # a member's name
        for frm in ("mallory", forged):
            err = request_vote(c, nid, term=U64, last_log_index=U64, last_log_term=U64, leadership_transfer=True,
                               **{"from": frm})  # fmt: skip
            _refused_status(err, grpc.StatusCode.INVALID_ARGUMENT, "term-out-of-range")
    # In range, but from a node that is no voter: the core refuses it and gives no answer.
    err = request_vote(c, leader, term=term + 1000, last_log_index=MAX, last_log_term=term + 1000,
                       leadership_transfer=True, **{"from": "mallory"})  # fmt: skip
    assert err.code() == grpc.StatusCode.UNAVAILABLE and "no answer" in (err.details() or "")  # type: ignore[attr-defined]
    counts = _wait_refused(c, leader, {"term-out-of-range": 2, "not-a-voter": 1})
    assert all(value == 0 for reason, value in counts.items() if reason not in ("term-out-of-range", "not-a-voter"))

    assert c.wait_leader() == leader, "a refused vote request deposed the leader"
    assert {_status(c, n).term for n in c.ids} == {term}
    assert_healthy(c, "after the hostile votes")
    restart_all(c)
    assert_healthy(c, "after restarting every node")


def test_gapped_appends_and_a_huge_commit_leave_the_follower_applying(cluster: MetricsCluster) -> None:
    c = cluster
    leader = c.wait_leader()
    follower = next(n for n in c.ids if n != leader)
    st = _status(c, follower)
    term, last = st.term, st.last_log_index
    gapped = [raft_pb2.Entry(term=term, index=last + 2, data=b"x"), raft_pb2.Entry(term=term, index=last + 5)]
    replies, code = append_entries(c, follower, _msg(leader, follower, term=term, prev_log_index=last,
                                                     prev_log_term=term, entries=gapped, commit=last + 5))
    assert (replies, code) == ([], grpc.StatusCode.INVALID_ARGUMENT)
    # Our heartbeats carry read_seq MARK: the follower sends its answers to the leader's id on the
    # newest stream from it, so an answer to the real leader's heartbeat can arrive on ours too
    # (make test on 3 workers saw one, read_seq 1).
    beat = _msg(leader, follower, term=term, commit=U64, prev_log_term=term, heartbeat=True, read_seq=MARK)
    replies, code = append_entries(c, follower, beat)
    assert ([r for r in replies if r.read_seq == MARK], code) == ([], grpc.StatusCode.INVALID_ARGUMENT)
    # In range but past the follower's log: the transport hands it on and the core refuses it.
    beat = _msg(leader, follower, term=term, commit=last + 1000, prev_log_term=term, heartbeat=True, read_seq=MARK)
    replies, code = append_entries(c, follower, beat)
    assert ([r for r in replies if r.read_seq == MARK], code) == ([], grpc.StatusCode.OK)
    counts = _wait_refused(c, follower, {"entries-not-contiguous": 1, "index-out-of-range": 1, "commit-beyond-log": 1})
    assert counts.get("commit-not-matched", 0) == 0

    after = _status(c, follower)
    assert after.commit_index <= after.last_log_index and after.commit_index < last + 1000
    assert_healthy(c, "after the gapped appends and the huge commits")
    restart_all(c)
    assert_healthy(c, "after restarting every node")


def test_appends_in_the_leaders_name_with_impossible_entries_are_refused(cluster: MetricsCluster) -> None:
    c = cluster
    leader = c.wait_leader()
    follower = next(n for n in c.ids if n != leader)
    st = _status(c, follower)
    term, last = st.term, st.last_log_index
    bad: dict[str, Callable[[], raft_pb2.AppendEntriesRequest]] = {
        "unparsable": lambda: _msg(leader, follower, term=term, prev_log_index=last, prev_log_term=term,
                                   entries=[raft_pb2.Entry(term=term, index=last + 1, type=7)]),  # type: ignore[arg-type]
        "bad-log-terms": lambda: _msg(leader, follower, term=term, prev_log_index=last, prev_log_term=term,
                                      entries=[raft_pb2.Entry(term=term + 5, index=last + 1, data=b"\xff" * 64)]),
        "from-self": lambda: _msg(follower, follower, term=term, heartbeat=True),
        "wrong-recipient": lambda: _msg(leader, "n9", term=term, heartbeat=True),
    }  # fmt: skip
    for reason, make in bad.items():
        replies, code = append_entries(c, follower, make())
        assert replies == [] and code != grpc.StatusCode.OK, reason
    with grpc.insecure_channel(c.addr[follower]) as channel, pytest.raises(grpc.RpcError) as err:
        channel.unary_unary("/raftsched.v1.Raft/RequestVote")(b"\xff\xff\xff\x07junk", timeout=CALL_TIMEOUT)
    _refused_status(err.value, grpc.StatusCode.INVALID_ARGUMENT, "unparsable")  # bytes that are no message
    _wait_refused(c, follower, {**dict.fromkeys(bad, 1), "unparsable": 2})
    assert_healthy(c, "after the impossible appends")
    for nid in c.ids:
        entries = c.client(nid).read_log(1, 1000).entries
        assert not any(e.data == b"\xff" * 64 for e in entries), f"{nid} holds the forged entry"
    restart_all(c)
    assert_healthy(c, "after restarting every node")
