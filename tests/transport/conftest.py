"""A tiny cluster harness for the transport: real grpc.aio servers on 127.0.0.1, one
`RaftTransport` per node, and an inbox recording everything each node's transport delivers.

The "core" is an echo: it answers requests through the node's own `send()`, so responses travel
the real reply routes (vote futures and inbound append streams).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import grpc
import pytest

from raftsched.raft.messages import (
    AppendRequest,
    AppendResponse,
    Heartbeat,
    HeartbeatResponse,
    Message,
    VoteRequest,
    VoteResponse,
)
from raftsched.transport import RaftTransport, server_options

WAIT = 20.0  # generous deadline for conditions; tests never assert on speed


class Inbox:
    """Everything delivered to one node, with waiting on a condition (no fixed sleeps)."""

    def __init__(self) -> None:
        self.messages: list[Message] = []
        self._changed = asyncio.Event()

    def add(self, msg: Message) -> None:
        self.messages.append(msg)
        self._changed.set()

    def of(self, kind: type, frm: str | None = None) -> list[Message]:
        return [m for m in self.messages if type(m) is kind and (frm is None or m.frm == frm)]

    async def wait_count(self, kind: type, n: int, frm: str | None = None) -> None:
        """Wait until at least `n` messages of `kind` (from `frm`) have arrived."""
        await self.wait_for(lambda: len(self.of(kind, frm)) >= n)

    async def wait_for(self, cond: Callable[[], bool], timeout: float = WAIT) -> None:
        async with asyncio.timeout(timeout):
            while not cond():
                self._changed.clear()
                await self._changed.wait()


def echo_reply(me: str, msg: Message) -> Message | None:
    """What a trivially agreeable core answers to a request."""
    match msg:
        case VoteRequest():
            return VoteResponse(frm=me, to=msg.frm, term=msg.term, granted=True, pre_vote=msg.pre_vote)
        case AppendRequest():
            last = msg.entries[-1].index if msg.entries else msg.prev_index
            return AppendResponse(frm=me, to=msg.frm, term=msg.term, success=True, match_index=last)
        case Heartbeat():
            return HeartbeatResponse(frm=me, to=msg.frm, term=msg.term, read_seq=msg.read_seq)
    return None


@dataclass(eq=False)
class Node:
    id: str
    port: int
    server: grpc.aio.Server
    inbox: Inbox = field(default_factory=Inbox)
    transport: RaftTransport | None = None
    echo: bool = True  # answer requests like a core would
    defer: bool = True  # answer on a later loop iteration, as the driver would after persisting

    @property
    def t(self) -> RaftTransport:
        assert self.transport is not None
        return self.transport

    def deliver(self, msg: Message) -> None:
        self.inbox.add(msg)
        reply = echo_reply(self.id, msg) if self.echo else None
        if reply is None:
            return
        if self.defer:
            asyncio.get_running_loop().call_soon(self.t.send, [reply])
        else:
            self.t.send([reply])


@dataclass
class Cluster:
    nodes: dict[str, Node]
    addresses: dict[str, str]

    def __getitem__(self, node_id: str) -> Node:
        return self.nodes[node_id]


MakeCluster = Callable[..., Awaitable[Cluster]]


@pytest.fixture
async def cluster() -> AsyncIterator[MakeCluster]:
    """`await cluster(["a", "b"], extra={"dead": addr}, rpc_timeout=...)` starts live nodes;
    everything is closed at teardown, and teardown checks no task is left behind."""
    started: list[Node] = []

    async def make(ids: Iterable[str], extra: dict[str, str] | None = None, **kwargs: Any) -> Cluster:
        nodes = {i: await bind(i) for i in ids}
        addresses = {i: f"127.0.0.1:{n.port}" for i, n in nodes.items()} | (extra or {})
        for node in nodes.values():
            await start(node, addresses, **kwargs)
            started.append(node)
        return Cluster(nodes, addresses)

    yield make
    await stop_all(started)


async def bind(node_id: str, port: int = 0) -> Node:
    """A node whose server is bound (to `port`, or any free one) but not yet serving."""
    server = grpc.aio.server(options=server_options())
    bound = server.add_insecure_port(f"127.0.0.1:{port}")
    return Node(node_id, bound, server)


async def start(node: Node, addresses: dict[str, str], **kwargs: Any) -> None:
    node.transport = RaftTransport(node.id, addresses, node.deliver, **kwargs)
    node.t.servicer().add_to_server(node.server)
    await node.server.start()


async def stop_all(nodes: Iterable[Node]) -> None:
    for node in nodes:
        await node.t.close()
        await node.server.stop(grace=1.0)
    leftovers = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
    if leftovers:
        # grpc's server.stop() cancels the handlers still running after its grace but does not wait
        # for their tasks to unwind (seen under load: a TimeoutNow handler's task). Let them finish;
        # anything still running after that was left behind by close().
        await asyncio.wait(leftovers, timeout=2.0)
        leftovers = [t for t in leftovers if not t.done()]
    assert leftovers == [], f"tasks left running after close(): {leftovers}"
