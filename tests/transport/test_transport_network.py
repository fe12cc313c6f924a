"""Transports exchanging messages over real grpc.aio servers on 127.0.0.1.

Each scenario sends what a core would send and checks what each node's `deliver` received.
Waits are on conditions with generous deadlines; nothing asserts on speed.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest

from raftsched import features
from raftsched.raft.messages import (
    AppendRequest,
    AppendResponse,
    ConfigState,
    Entry,
    Heartbeat,
    HeartbeatResponse,
    SnapshotMeta,
    SnapshotRequest,
    SnapshotResponse,
    SnapshotStatus,
    TimeoutNow,
    Unreachable,
    VoteRequest,
    VoteResponse,
)
from raftsched.testing.procs import free_port
from raftsched.transport import convert
from raftsched.transport.peers import APPEND_QUEUE_LIMIT
from raftsched.transport.snapshots import CHUNK_BYTES, ReceivedSnapshot, SnapshotFile, file_chunks
from raftsched.v1 import raft_pb2 as pb
from raftsched.v1 import raft_pb2_grpc

from .conftest import MakeCluster, Node, bind, start


def append(frm: str, to: str, i: int) -> AppendRequest:
    prev_term = 1 if i > 1 else 0  # index 0 (before the first entry) has term 0
    return AppendRequest(frm, to, term=1, prev_index=i - 1, prev_term=prev_term, entries=(Entry(1, i, data=b"x"),),
                         commit=0)  # fmt: skip


@pytest.fixture
async def hung_address() -> AsyncIterator[str]:
    """A peer that accepts TCP connections and never speaks: the worst kind of slow."""
    stop = asyncio.Event()
    handlers: set[asyncio.Task[object]] = set()

    async def hold(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        handlers.add(task)
        try:
            await stop.wait()
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):  # the client may have hung up first
                await writer.wait_closed()

    server = await asyncio.start_server(hold, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    yield f"127.0.0.1:{port}"
    server.close()
    await server.wait_closed()
    stop.set()
    for _ in range(3):  # let handlers of connections accepted just before close() start
        await asyncio.sleep(0)
    await asyncio.gather(*handlers)


@pytest.mark.parametrize("defer", [True, False], ids=["core-answers-later", "core-answers-inside-deliver"])
async def test_vote_request_gets_vote_response(cluster: MakeCluster, defer: bool) -> None:
    c = await cluster(["a", "b"])
    c["b"].defer = defer
    c["a"].t.send([VoteRequest("a", "b", term=3, last_log_index=7, last_log_term=2, pre_vote=True)])
    await c["a"].inbox.wait_for(lambda: bool(c["a"].inbox.of(VoteResponse)))
    assert c["b"].inbox.messages == [VoteRequest("a", "b", 3, 7, 2, pre_vote=True)]
    assert c["a"].inbox.messages == [VoteResponse("b", "a", term=3, granted=True, pre_vote=True)]


@pytest.mark.parametrize("defer", [True, False], ids=["core-answers-later", "core-answers-inside-deliver"])
async def test_append_and_heartbeat_get_their_responses(cluster: MakeCluster, defer: bool) -> None:
    c = await cluster(["a", "b", "c"])
    for n in c.nodes.values():
        n.defer = defer
    c["a"].t.send([append("a", "b", 1), Heartbeat("a", "c", term=1, commit=0, read_seq=9), append("a", "c", 1)])
    await c["a"].inbox.wait_for(lambda: len(c["a"].inbox.messages) == 3)
    assert set(c["a"].inbox.messages) == {
        AppendResponse("b", "a", term=1, success=True, match_index=1),
        HeartbeatResponse("c", "a", term=1, read_seq=9),
        AppendResponse("c", "a", term=1, success=True, match_index=1),
    }
    assert c["c"].inbox.messages == [Heartbeat("a", "c", 1, 0, 9), append("a", "c", 1)]


async def test_a_leader_learns_what_each_follower_reads_from_its_replies(cluster: MakeCluster) -> None:
    """raftsched.features: known only from a reply on the current append stream (a follower
    that never answered counts as reading nothing new)."""
    c = await cluster(["a", "b", "c"])
    assert c["a"].t.peer_features("b") is None and c["a"].t.peer_features("c") is None
    c["a"].t.send([append("a", "b", 1)])
    await c["a"].inbox.wait_for(lambda: len(c["a"].inbox.messages) == 1)
    assert c["a"].t.peer_features("b") == features.SUPPORTED != 0
    assert c["a"].t.peer_features("c") is None and c["b"].t.peer_features("a") is None


async def test_timeout_now_is_delivered(cluster: MakeCluster) -> None:
    c = await cluster(["a", "b"])
    c["a"].t.send([TimeoutNow("a", "b", term=4)])
    await c["b"].inbox.wait_for(lambda: bool(c["b"].inbox.messages))
    assert c["b"].inbox.messages == [TimeoutNow("a", "b", 4)]
    assert c["a"].inbox.messages == []


async def test_ten_thousand_appends_arrive_in_order(cluster: MakeCluster) -> None:
    """Every entry arrives once, in order. Appends queued together behind a busy stream may go
    out merged (raftsched.raft.appends), so the follower may see fewer, longer messages."""
    c = await cluster(["a", "b"])
    a, b = c["a"], c["b"]
    total, window = 10_000, 2_000  # the leader keeps at most `window` unanswered, like a core would

    def matched() -> int:
        return max((m.match_index for m in a.inbox.of(AppendResponse)), default=0)

    for first in range(1, total + 1, 500):
        await a.inbox.wait_for(lambda first=first: matched() >= first - window)  # type: ignore[misc]
        a.t.send([append("a", "b", i) for i in range(first, min(first + 500, total + 1))])
    await a.inbox.wait_for(lambda: matched() == total)
    received = [e.index for m in b.inbox.of(AppendRequest) for e in m.entries]
    assert received == list(range(1, total + 1))
    answers = [m.match_index for m in a.inbox.of(AppendResponse)]
    assert answers == sorted(set(answers)) and answers[-1] == total
    assert len(answers) < total  # some were merged: 500 at a time are queued faster than written


async def test_dead_peer_neither_delays_a_live_one_nor_floods_the_core(cluster: MakeCluster) -> None:
    c = await cluster(["a", "b"], extra={"dead": f"127.0.0.1:{free_port()}"})
    a, b = c["a"], c["b"]
    for i in range(1, 51):
        a.t.send([append("a", "dead", i), Heartbeat("a", "dead", 1, 0, i), append("a", "b", i)])
        a.t.send([VoteRequest("a", "dead", 2, i, 1), VoteRequest("a", "b", 2, i, 1)])
        await b.inbox.wait_count(AppendRequest, i)
        await a.inbox.wait_count(VoteResponse, i)
    assert a.inbox.of(Unreachable, frm="dead") == [Unreachable("dead", "a")]  # once for the whole burst
    assert a.inbox.of(Unreachable, frm="b") == []
    assert len(a.inbox.of(AppendResponse, frm="b")) == 50
    assert len(b.inbox.of(AppendRequest)) == 50  # nothing duplicated either


async def test_hung_peer_does_not_block_a_live_one(cluster: MakeCluster, hung_address: str) -> None:
    c = await cluster(["a", "b"], extra={"hung": hung_address}, rpc_timeout=0.3)
    a, b = c["a"], c["b"]
    a.t.send([VoteRequest("a", "hung", 2, 0, 0), TimeoutNow("a", "hung", 2), append("a", "hung", 1)])
    for i in range(1, 21):
        a.t.send([append("a", "hung", i + 1), append("a", "b", i)])
        await b.inbox.wait_count(AppendRequest, i)
    # The unary calls hit their deadline: the core hears about it once.
    await a.inbox.wait_for(lambda: bool(a.inbox.of(Unreachable, frm="hung")))
    assert a.inbox.of(Unreachable, frm="hung") == [Unreachable("hung", "a")]


async def test_full_append_queue_reports_unreachable_once(cluster: MakeCluster, hung_address: str) -> None:
    c = await cluster(["a"], extra={"hung": hung_address})
    a = c["a"]
    a.t.send([append("a", "hung", i) for i in range(1, APPEND_QUEUE_LIMIT + 100)])
    await a.inbox.wait_for(lambda: bool(a.inbox.messages))
    a.t.send([append("a", "hung", 1)])  # still full, same burst: no second report
    await asyncio.sleep(0)  # let a (wrong) deferred second report run before checking
    assert a.inbox.messages == [Unreachable("hung", "a")]


async def test_peer_recovers_after_restart_and_is_reported_again_after_next_failure(
    cluster: MakeCluster,
) -> None:
    port = free_port()
    c = await cluster(["a"], extra={"b": f"127.0.0.1:{port}"})
    a = c["a"]
    a.t.send([append("a", "b", 1)])
    await a.inbox.wait_for(lambda: len(a.inbox.of(Unreachable)) == 1)

    b = await bind("b", port)
    await start(b, c.addresses)
    try:
        # The leader keeps sending (as a probing core would) until a reply shows the stream is back.
        async with asyncio.timeout(20):
            while not a.inbox.of(AppendResponse):
                a.t.send([append("a", "b", 2)])
                await asyncio.sleep(0.05)
    finally:
        await b.t.close()
        await b.server.stop(grace=0.5)
    await a.inbox.wait_for(lambda: len(a.inbox.of(Unreachable)) == 2)  # a new burst, a new report


async def test_vote_with_no_answer_from_the_core_is_not_unreachable(cluster: MakeCluster) -> None:
    c = await cluster(["a", "b"], rpc_timeout=0.3)
    c["b"].echo = False  # b's core ignores the vote (as a follower with a live leader may)
    c["a"].t.send([VoteRequest("a", "b", 2, 0, 0)])
    await c["b"].inbox.wait_for(lambda: bool(c["b"].inbox.messages))
    await _until_no_calls_in_flight(c["a"])
    assert c["a"].inbox.messages == []


async def test_latest_vote_request_from_a_candidate_wins(cluster: MakeCluster) -> None:
    c = await cluster(["a", "b"], rpc_timeout=5.0)
    b = c["b"]
    b.echo = False
    a = c["a"]
    a.t.send([VoteRequest("a", "b", 2, 0, 0)])
    await b.inbox.wait_for(lambda: len(b.inbox.messages) == 1)
    a.t.send([VoteRequest("a", "b", 3, 0, 0)])
    await b.inbox.wait_for(lambda: len(b.inbox.messages) == 2)
    b.t.send([VoteResponse("b", "a", term=3, granted=True)])
    await a.inbox.wait_for(lambda: bool(a.inbox.of(VoteResponse)))
    await _until_no_calls_in_flight(a)
    assert a.inbox.messages == [VoteResponse("b", "a", 3, True)]  # the superseded call is not "unreachable"


async def test_responses_without_an_inbound_call_are_dropped(cluster: MakeCluster) -> None:
    c = await cluster(["a", "b"])
    c["b"].t.send(
        [
            VoteResponse("b", "a", 1, True),
            AppendResponse("b", "a", 1, True, 3),
            HeartbeatResponse("b", "a", 1, 1),
        ]
    )
    c["a"].t.send([TimeoutNow("a", "b", 1)])  # a marker: once it arrives, earlier sends had their chance
    await c["b"].inbox.wait_for(lambda: bool(c["b"].inbox.messages))
    assert c["a"].inbox.messages == []


async def test_snapshot_without_a_source_reports_failure(cluster: MakeCluster) -> None:
    c = await cluster(["a", "b"])
    meta = SnapshotMeta(index=5, term=1, config=ConfigState(voters=frozenset({"a", "b"})))
    c["a"].t.send([SnapshotRequest("a", "b", 1, meta)])
    await c["a"].inbox.wait_for(lambda: bool(c["a"].inbox.messages))
    assert c["a"].inbox.messages == [SnapshotStatus("b", "a", failed=True)]


async def test_snapshot_streams_in_chunks_and_the_answer_comes_back(cluster: MakeCluster, tmp_path: Path) -> None:
    """A multi-chunk snapshot file arrives whole and verified, as a file of the receiver's; the
    follower core's SnapshotResponse travels back to the leader, then a successful SnapshotStatus."""
    c = await cluster(["a", "b"])
    data = bytes(range(256)) * (3 * CHUNK_BYTES // 256 + 7)  # 3+ chunks, not a multiple of the size
    sent = tmp_path / "sent.rss"
    sent.write_bytes(data)
    meta = SnapshotMeta(index=9, term=2, config=ConfigState(voters=frozenset({"a", "b"})))
    received: list[tuple[ReceivedSnapshot, bytes]] = []

    async def source(msg: SnapshotRequest) -> SnapshotFile:
        return SnapshotFile(msg, sent, dict(c.addresses))

    async def sink(snapshot: ReceivedSnapshot) -> None:
        received.append((snapshot, snapshot.path.read_bytes()))
        c["b"].t.router.deliver(snapshot.request)
        c["b"].t.send([SnapshotResponse("b", "a", 2, True, 9)])  # what the follower's core answers

    c["a"].t.snapshot_source = source
    c["b"].t.router.snapshot_sink = sink
    c["b"].t.router.snapshot_dir = tmp_path / "incoming"
    c["a"].t.send([SnapshotRequest("a", "b", 2, meta)])
    await c["a"].inbox.wait_for(lambda: bool(c["a"].inbox.of(SnapshotStatus)))
    assert [body == data for _, body in received] == [True]
    assert received[0][0].request.meta == meta
    assert received[0][0].addresses == c.addresses
    assert c["a"].inbox.of(SnapshotResponse) == [SnapshotResponse("b", "a", 2, True, 9)]
    assert c["a"].inbox.of(SnapshotStatus) == [SnapshotStatus("b", "a", failed=False)]


async def test_a_damaged_snapshot_is_refused_and_never_handed_on(cluster: MakeCluster, tmp_path: Path) -> None:
    c = await cluster(["a"])
    handed: list[ReceivedSnapshot] = []

    async def sink(snapshot: ReceivedSnapshot) -> None:
        handed.append(snapshot)

    c["a"].t.router.snapshot_sink = sink
    c["a"].t.router.snapshot_dir = tmp_path / "incoming"
    meta = SnapshotMeta(index=3, term=1, config=ConfigState(voters=frozenset({"a"})))
    payload = tmp_path / "payload.rss"
    payload.write_bytes(b"payload" * 1000)
    good = list(file_chunks(SnapshotFile(SnapshotRequest("x", "a", 1, meta), payload, {})))
    bad = [*good[:-1], pb.InstallSnapshotChunk(**{**_fields(good[-1]), "crc32c": good[-1].crc32c ^ 1})]
    async with grpc.aio.insecure_channel(c.addresses["a"]) as channel:
        stub = raft_pb2_grpc.RaftStub(channel)  # type: ignore[no-untyped-call]
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await stub.InstallSnapshot(iter(bad), timeout=10)
    assert info.value.code() == grpc.StatusCode.DATA_LOSS
    assert "checksum" in (info.value.details() or "")
    assert handed == []
    assert list((tmp_path / "incoming").iterdir()) == []  # the partial file is gone


def _fields(chunk: pb.InstallSnapshotChunk) -> dict[str, object]:
    return {f.name: getattr(chunk, f.name) for f in chunk.DESCRIPTOR.fields}


async def test_install_snapshot_without_a_sink_is_unimplemented(cluster: MakeCluster) -> None:
    c = await cluster(["a"])
    async with grpc.aio.insecure_channel(c.addresses["a"]) as channel:
        stub = raft_pb2_grpc.RaftStub(channel)  # type: ignore[no-untyped-call]
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await stub.InstallSnapshot(iter([pb.InstallSnapshotChunk(to="a", done=True)]))
    assert info.value.code() == grpc.StatusCode.UNIMPLEMENTED


async def test_misaddressed_message_is_refused(cluster: MakeCluster) -> None:
    c = await cluster(["a", "b"])
    async with grpc.aio.insecure_channel(c.addresses["b"]) as channel:
        stub = raft_pb2_grpc.RaftStub(channel)  # type: ignore[no-untyped-call]
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await stub.TimeoutNow(pb.TimeoutNowRequest(to="zz", term=1), timeout=5)
    assert info.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert c["b"].inbox.messages == []


async def test_send_never_raises_on_local_reports_and_unknown_peers(cluster: MakeCluster) -> None:
    c = await cluster(["a"])
    a = c["a"]
    a.t.send([Unreachable("x", "a"), SnapshotStatus("x", "a"), append("a", "nobody", 1), append("a", "a", 1)])
    await a.inbox.wait_for(lambda: bool(a.inbox.messages))
    await asyncio.sleep(0)
    assert a.inbox.messages == [Unreachable("nobody", "a")]


async def test_update_peers_adds_and_removes(cluster: MakeCluster) -> None:
    c = await cluster(["a", "b", "c"])
    a = c["a"]
    a.t.update_peers({"a": c.addresses["a"], "b": c.addresses["b"]})  # c removed
    a.t.send([append("a", "b", 1), append("a", "c", 1)])
    await a.inbox.wait_for(lambda: bool(a.inbox.of(AppendResponse)) and bool(a.inbox.of(Unreachable)))
    assert a.inbox.of(Unreachable) == [Unreachable("c", "a")]
    a.t.update_peers(c.addresses)  # c back
    a.t.send([append("a", "c", 1)])
    await a.inbox.wait_for(lambda: bool(a.inbox.of(AppendResponse, frm="c")))


async def test_close_ends_inbound_streams_and_leaves_no_tasks(cluster: MakeCluster) -> None:
    c = await cluster(["a", "b"], extra={"dead": f"127.0.0.1:{free_port()}"})
    a, b = c["a"], c["b"]
    a.t.send([append("a", "b", 1), append("a", "dead", 1), VoteRequest("a", "dead", 1, 0, 0)])
    await a.inbox.wait_for(lambda: bool(a.inbox.of(AppendResponse)))
    await b.t.close()  # b's inbound stream from a ends; a sees it and reports b
    await a.inbox.wait_for(lambda: bool(a.inbox.of(Unreachable, frm="b")))
    b.t.send([AppendResponse("b", "a", 1, True, 1)])  # after close: dropped, no error
    # The fixture's teardown closes everything and asserts that no task is left.


async def _until_no_calls_in_flight(node: Node) -> None:
    """Wait until the node's transport has no unary call running (each ends by reply or deadline).
    Peeks at private state: the transport has no public hook for this, and production needs none."""
    async with asyncio.timeout(20):
        while any(p._unary_tasks for p in node.t._peers.values()):
            await asyncio.sleep(0.01)


async def test_new_append_stream_from_a_leader_replaces_the_old_route(cluster: MakeCluster) -> None:
    c = await cluster(["b"])
    beat = convert.heartbeat_to_pb(Heartbeat("x", "b", term=1, commit=0, read_seq=1))
    async with grpc.aio.insecure_channel(c.addresses["b"]) as channel:
        stub = raft_pb2_grpc.RaftStub(channel)  # type: ignore[no-untyped-call]
        old = stub.AppendEntries()
        await old.write(beat)
        assert (await old.read()).read_seq == 1
        new = stub.AppendEntries()
        beat.read_seq = 2
        await new.write(beat)
        assert (await new.read()).read_seq == 2  # the reply took the newest route ...
        assert await old.read() is grpc.aio.EOF  # ... and the replaced stream was ended
        await new.done_writing()
        assert await new.read() is grpc.aio.EOF
