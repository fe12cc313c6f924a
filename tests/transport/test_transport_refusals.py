"""The Raft service's boundary (issue 14): what a stranger's calls get, over real grpc.aio on
127.0.0.1. A refused request ends its call with a status naming the reason, is counted by reason
in the router, is logged once per reason per interval, and never reaches the core (`deliver`).
"""

from __future__ import annotations

import logging

import grpc
import pytest

from raftsched.raft.messages import Heartbeat, LeaderLost
from raftsched.raft.refusals import Reason
from raftsched.transport import convert
from raftsched.transport.service import RaftServicer
from raftsched.v1 import raft_pb2 as pb
from raftsched.v1 import raft_pb2_grpc

from .conftest import MakeCluster, bind, start

U64 = 2**64 - 1


def _stub(channel: grpc.aio.Channel) -> raft_pb2_grpc.RaftStub:
    return raft_pb2_grpc.RaftStub(channel)  # type: ignore[no-untyped-call]


def _append(frm: str, to: str, **fields: object) -> pb.AppendEntriesRequest:
    return pb.AppendEntriesRequest(to=to, **{"from": frm}, **fields)  # type: ignore[arg-type]


async def _stream(address: str, *requests: pb.AppendEntriesRequest) -> tuple[list[object], grpc.StatusCode, str]:
    """Write `requests` on one AppendEntries stream, then read it to its end."""
    async with grpc.aio.insecure_channel(address) as channel:
        call = _stub(channel).AppendEntries(timeout=10)
        for request in requests:
            await call.write(request)
        await call.done_writing()
        replies = []
        try:
            async for reply in call:
                replies.append(reply)
        except grpc.aio.AioRpcError as err:
            return replies, err.code(), err.details() or ""
        return replies, await call.code(), await call.details()


async def test_a_huge_term_vote_is_refused_counted_and_never_delivered(cluster: MakeCluster) -> None:
    c = await cluster(["a", "b"])
    vote = pb.VoteRequest(to="b", term=U64, last_log_index=U64, last_log_term=U64, leadership_transfer=True,
                          **{"from": "mallory"})  # fmt: skip
    async with grpc.aio.insecure_channel(c.addresses["b"]) as channel:
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await _stub(channel).RequestVote(vote, timeout=10)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "term-out-of-range" in (err.value.details() or "")
    assert c["b"].inbox.messages == []
    assert c["b"].t.router.refusals.counts == {Reason.TERM_OUT_OF_RANGE: 1}


async def test_a_refused_first_append_opens_no_route(cluster: MakeCluster) -> None:
    """Gapped entries in the leader's name: refused before the stream becomes the way back to
    "a", so a's own stream and its replies are untouched."""
    c = await cluster(["a", "b"])
    gapped = _append("a", "b", term=1, prev_log_index=0, entries=[pb.Entry(term=1, index=2)])
    replies, code, details = await _stream(c.addresses["b"], gapped)
    assert (replies, code) == ([], grpc.StatusCode.INVALID_ARGUMENT) and "entries-not-contiguous" in details
    # Had the stream become the route back to "a", its end would have told b's core "a" is lost.
    assert c["b"].inbox.messages == []
    c["a"].t.send([convert.append_request_from_pb(_append("a", "b", term=1, heartbeat=True, read_seq=3))])
    await c["a"].inbox.wait_for(lambda: bool(c["a"].inbox.messages))
    assert [type(m).__name__ for m in c["a"].inbox.messages] == ["HeartbeatResponse"]


async def test_stream_refusals_end_the_stream_after_what_was_good(cluster: MakeCluster) -> None:
    c = await cluster(["b"])
    good = convert.heartbeat_to_pb(Heartbeat("x", "b", term=1, commit=0, read_seq=1))
    cases = {
        Reason.SENDER_CHANGED: _append("y", "b", term=1, heartbeat=True),
        Reason.INDEX_OUT_OF_RANGE: _append("x", "b", term=1, commit=U64, heartbeat=True),
        Reason.ENTRIES_NOT_CONTIGUOUS: _append("x", "b", term=1, entries=[pb.Entry(term=1, index=5)]),
        Reason.UNPARSABLE: _append("x", "b", term=1, entries=[pb.Entry(term=1, index=1, type=9)]),  # type: ignore[arg-type]
        Reason.WRONG_RECIPIENT: _append("x", "c", term=1, heartbeat=True),
    }
    for reason, bad in cases.items():
        before = len(c["b"].inbox.messages)
        replies, code, details = await _stream(c.addresses["b"], good, bad, good)
        assert code == grpc.StatusCode.INVALID_ARGUMENT and str(reason) in details, (reason, details)
        assert len(replies) == 1  # the good one was answered; nothing after the bad one was read
        delivered = [type(m) for m in c["b"].inbox.messages[before:] if not isinstance(m, LeaderLost)]
        assert delivered == [Heartbeat], reason  # (LeaderLost: the stream from "x" ended)
    assert c["b"].t.router.refusals.counts == dict.fromkeys(cases, 1)


async def test_refusals_are_logged_once_per_reason(cluster: MakeCluster, caplog: pytest.LogCaptureFixture) -> None:
    c = await cluster(["b"])
    caplog.set_level(logging.WARNING, logger="raftsched.transport.routes")
    async with grpc.aio.insecure_channel(c.addresses["b"]) as channel:
        for _ in range(20):
            with pytest.raises(grpc.aio.AioRpcError):
                await _stub(channel).TimeoutNow(pb.TimeoutNowRequest(to="b", term=U64, **{"from": "m"}), timeout=10)
    lines = [r for r in caplog.records if "refused" in r.getMessage()]
    assert len(lines) == 1 and "term-out-of-range" in lines[0].getMessage() and lines[0].exc_info is None
    assert c["b"].t.router.refusals.total == 20


async def test_a_message_in_another_nodes_name_than_the_certificates_is_refused() -> None:
    node = await bind("b")
    server = node.server
    try:
        await start(node, {})
        # A second servicer on its own server, told that the caller's certificate names "a".
        other = await bind("b")
        other.transport = node.transport
        RaftServicer(node.t.router, certified=lambda: "a").add_to_server(other.server)
        await other.server.start()
        try:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{other.port}") as channel:
                stub = _stub(channel)
                with pytest.raises(grpc.aio.AioRpcError) as err:
                    await stub.TimeoutNow(pb.TimeoutNowRequest(to="b", term=1, **{"from": "c"}), timeout=10)
                assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
                assert "from-not-certificate" in (err.value.details() or "")
                await stub.TimeoutNow(pb.TimeoutNowRequest(to="b", term=1, **{"from": "a"}), timeout=10)
            assert [m.frm for m in node.inbox.messages] == ["a"]
            assert node.t.router.refusals.counts == {Reason.FROM_NOT_CERTIFICATE: 1}
        finally:
            await other.server.stop(grace=1.0)
    finally:
        await node.t.close()
        await server.stop(grace=1.0)


async def test_bytes_that_are_no_message_are_refused_as_unparsable(cluster: MakeCluster) -> None:
    """No traceback per frame and no UNKNOWN: INVALID_ARGUMENT, counted like any refusal."""
    c = await cluster(["b"])
    async with grpc.aio.insecure_channel(c.addresses["b"]) as channel:
        for method in ("RequestVote", "TimeoutNow"):
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await channel.unary_unary(f"/raftsched.v1.Raft/{method}")(b"\xff\xff\xff\x07junk", timeout=10)
            assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "unparsable" in (err.value.details() or "")
        stream = channel.stream_stream("/raftsched.v1.Raft/AppendEntries")(timeout=10)
        await stream.write(convert.heartbeat_to_pb(Heartbeat("x", "b", term=1, commit=0)).SerializeToString())
        await stream.write(b"\x0a\xff\xff\xff")
        await stream.done_writing()
        with pytest.raises(grpc.aio.AioRpcError) as err:
            async for _ in stream:
                pass
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert c["b"].t.router.refusals.counts == {Reason.UNPARSABLE: 3}
    assert [type(m) for m in c["b"].inbox.messages if not isinstance(m, LeaderLost)] == [Heartbeat]
