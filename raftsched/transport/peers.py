"""The outbound side: one long-lived gRPC channel per peer, and `RaftTransport`, the object the
node's asyncio driver talks to.

Contract with the driver:

- `send(messages)` is synchronous, never blocks and never raises. Each message goes to the queue
  or task of its peer; a slow or dead peer only ever fills its own queue.
- `deliver(msg)` (given to the constructor) is called on the event loop with every message for the
  core: requests from peers, responses to our requests, and local reports (`Unreachable`,
  `SnapshotStatus`). It is never called from inside `send`, so the core is never re-entered
  while the driver is still handing it a ready.

Routing by message type:

| message | how it travels |
|---|---|
| AppendRequest, Heartbeat | the peer's one AppendEntries stream, in order, from a bounded queue |
| VoteRequest, TimeoutNow | a unary call with a deadline, the reply delivered |
| VoteResponse, AppendResponse, HeartbeatResponse | back on the inbound call they answer (`routes.py`) |
| SnapshotRequest | not implemented yet: reported at once as a failed `SnapshotStatus` |
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Mapping
from typing import Any, Final

import grpc

from raftsched.quoting import quote
from raftsched.raft.appends import merge_appends
from raftsched.raft.messages import (
    AppendRequest,
    AppendResponse,
    Heartbeat,
    HeartbeatResponse,
    Message,
    SnapshotRequest,
    SnapshotResponse,
    SnapshotStatus,
    TimeoutNow,
    Unreachable,
    VoteRequest,
    VoteResponse,
)
from raftsched.transport import convert
from raftsched.transport.options import MAX_MESSAGE_BYTES, ChannelOptions
from raftsched.transport.options import channel_options as default_channel_options
from raftsched.transport.routes import NO_ANSWER_PREFIX, ReplyRouter
from raftsched.transport.service import RaftServicer
from raftsched.transport.snapshots import SnapshotFile, SnapshotUnavailableError, file_chunks
from raftsched.v1 import raft_pb2_grpc

log = logging.getLogger(__name__)

APPEND_QUEUE_LIMIT: Final = 4096  # messages waiting for one peer's append stream
UNARY_IN_FLIGHT_LIMIT: Final = 16  # concurrent vote / TimeoutNow calls to one peer
DEFAULT_APPEND_BYTES: Final = 1 << 20  # as the node's max_append_bytes default
BACKOFF_INITIAL: Final = 0.05  # seconds before reopening a failed append stream, doubling ...
BACKOFF_MAX: Final = 1.0  # ... up to this

AppendMessage = AppendRequest | Heartbeat
ChannelFactory = Callable[[str], Any]  # address -> grpc.aio.Channel


class _Peer:
    """Everything this node keeps for one peer: the channel, the append stream and its queue,
    and the unary calls in flight. Owns its tasks; `close()` stops them all."""

    def __init__(
        self,
        peer_id: str,
        address: str,
        router: ReplyRouter,
        *,
        rpc_timeout: float,
        open_channel: ChannelFactory,
        merge_bytes: int,
    ) -> None:
        self.id = peer_id
        self.address = address
        self._router = router
        self._rpc_timeout = rpc_timeout
        self._merge_bytes = merge_bytes
        self._channel = open_channel(address)
        self._stub = raft_pb2_grpc.RaftStub(self._channel)  # type: ignore[no-untyped-call]
        self._appends: asyncio.Queue[AppendMessage] = asyncio.Queue(maxsize=APPEND_QUEUE_LIMIT)
        self._stream_task: asyncio.Task[None] | None = None
        self._unary_tasks: set[asyncio.Task[None]] = set()
        self._snapshot_task: asyncio.Task[None] | None = None
        # True from the first failure until the peer answers again: one Unreachable per burst.
        self._unreachable_reported = False
        self._heard = False  # a reply arrived on the current append stream
        # raftsched.features bits of the last reply on the current append stream (None: none yet)
        self.features: int | None = None

    # --- called from send() (must not block or deliver synchronously) --------------------------

    def enqueue_append(self, msg: AppendMessage) -> None:
        if self._stream_task is None:
            self._stream_task = asyncio.get_running_loop().create_task(
                self._run_appends(), name=f"raft-out-{self._router.node_id}->{self.id}"
            )
            self._stream_task.add_done_callback(self._stream_task_done)
        try:
            self._appends.put_nowait(msg)
        except asyncio.QueueFull:
            # Raft tolerates loss; the core probes again after hearing the peer is unreachable.
            self.report_unreachable(f"append queue full ({APPEND_QUEUE_LIMIT})", deferred=True)

    def start_unary(self, name: str, call: Callable[[], Coroutine[Any, Any, None]]) -> None:
        if len(self._unary_tasks) >= UNARY_IN_FLIGHT_LIMIT:
            self.report_unreachable(f"{UNARY_IN_FLIGHT_LIMIT} calls already in flight", deferred=True)
            return
        task = asyncio.get_running_loop().create_task(self._guard(name, call), name=f"raft-{name}->{self.id}")
        self._unary_tasks.add(task)
        task.add_done_callback(self._unary_tasks.discard)

    # --- reachability ---------------------------------------------------------------------------

    def report_unreachable(self, reason: str, *, deferred: bool = False) -> None:
        """Tell the core once per failure burst; later failures in the same burst are only logged."""
        if self._unreachable_reported:
            log.debug("node=%s peer=%s still unreachable: %s", self._router.node_id, self.id, reason)
            return
        self._unreachable_reported = True
        log.warning(
            "node=%s peer=%s unreachable at %s: %s", self._router.node_id, self.id, self.address, reason
        )
        report = Unreachable(frm=self.id, to=self._router.node_id)
        if deferred:
            asyncio.get_running_loop().call_soon(self._router.deliver, report)
        else:
            self._router.deliver(report)

    def _reachable(self) -> None:
        self._unreachable_reported = False

    # --- unary calls ----------------------------------------------------------------------------

    async def request_vote(self, msg: VoteRequest) -> None:
        reply = await self._stub.RequestVote(convert.vote_request_to_pb(msg), timeout=self._rpc_timeout)
        self._reachable()
        self._router.deliver(convert.vote_response_from_pb(reply))

    async def timeout_now(self, msg: TimeoutNow) -> None:
        await self._stub.TimeoutNow(convert.timeout_now_to_pb(msg), timeout=self._rpc_timeout)
        self._reachable()

    async def _guard(self, name: str, call: Callable[[], Coroutine[Any, Any, None]]) -> None:
        """Run one unary call; every failure is logged and becomes at most one Unreachable."""
        try:
            await call()
        except grpc.aio.AioRpcError as err:
            if _is_no_answer(err):
                # The peer is up; its core did not answer this call (e.g. it still has a live leader).
                log.debug("node=%s peer=%s %s: %s", self._router.node_id, self.id, name, err.details())
                return
            self.report_unreachable(f"{name}: {err.code().name} {err.details()}")
        except Exception as err:
            log.exception("node=%s peer=%s %s failed", self._router.node_id, self.id, name)
            self.report_unreachable(f"{name}: {err!r}")

    # --- snapshots ------------------------------------------------------------------------------

    @property
    def sending_snapshot(self) -> bool:
        return self._snapshot_task is not None and not self._snapshot_task.done()

    def start_snapshot(self, make: Callable[[], Awaitable[SnapshotFile]]) -> None:
        self._snapshot_task = asyncio.get_running_loop().create_task(
            self._stream_snapshot(make), name=f"raft-snapshot->{self.id}"
        )

    async def _stream_snapshot(self, make: Callable[[], Awaitable[SnapshotFile]]) -> None:
        """A separate call from the append stream, so a large transfer never stalls appends.
        The snapshot is made (or reused) first, off the event loop, by the node."""
        failed = True
        try:
            snapshot = await make()
            log.info("node=%s sending snapshot at %d (%d bytes) to %s", self._router.node_id,
                     snapshot.request.meta.index, snapshot.path.stat().st_size, self.id)
            reply = await self._stub.InstallSnapshot(file_chunks(snapshot), timeout=600.0)
            self._router.deliver(
                SnapshotResponse(self.id, self._router.node_id, reply.term, reply.success, reply.match_index)
            )
            failed = not reply.success
        except grpc.aio.AioRpcError as err:
            log.warning("node=%s snapshot to %s failed: %s %s", self._router.node_id, self.id, err.code().name,
                        err.details())
        except (OSError, SnapshotUnavailableError) as err:
            log.warning("node=%s no snapshot for %s: %s", self._router.node_id, self.id, err)
        finally:
            self._router.deliver(SnapshotStatus(frm=self.id, to=self._router.node_id, failed=failed))

    # --- the append stream ----------------------------------------------------------------------

    async def _run_appends(self) -> None:
        """Open the stream when there is something to send; reopen it with backoff after errors."""
        backoff = BACKOFF_INITIAL
        while True:
            first = await self._appends.get()
            self._heard = False
            reason = await self._stream_session(first)
            self.features = None  # the next stream may reach another process (restarted, upgraded)
            dropped = _clear(self._appends)
            # Anything written but unanswered may be lost: let the core probe this peer again.
            self.report_unreachable(f"append stream ended ({reason}); dropped {dropped} queued")
            backoff = BACKOFF_INITIAL if self._heard else min(backoff * 2, BACKOFF_MAX)
            await asyncio.sleep(backoff)

    async def _stream_session(self, first: AppendMessage) -> str:
        """One AppendEntries stream, until either direction ends. Returns why it ended."""
        call = self._stub.AppendEntries()
        reader = asyncio.create_task(self._read_replies(call))
        writer = asyncio.create_task(self._write_requests(call, first))
        try:
            await asyncio.wait((reader, writer), return_when=asyncio.FIRST_COMPLETED)
        finally:
            call.cancel()
            reader.cancel()
            writer.cancel()
            outcomes = await asyncio.gather(reader, writer, return_exceptions=True)
        return _session_outcome(outcomes)

    async def _write_requests(self, call: Any, first: AppendMessage) -> None:
        """Write in queue order. Whatever is queued is taken and converted as one batch, then
        written back to back: grpc.aio has no multi-message write, and each write waits only for
        HTTP/2 flow control, never for the peer's answer."""
        await call.write(convert.append_request_to_pb(first))
        queue = self._appends
        to_pb = convert.append_request_to_pb
        while True:
            batch = [await queue.get()]
            batch.extend(_take_all(queue))
            for request in [to_pb(m) for m in _merged(batch, self._merge_bytes)]:
                await call.write(request)

    async def _read_replies(self, call: Any) -> None:
        from_pb = convert.append_response_from_pb
        deliver = self._router.deliver
        while True:
            reply = await call.read()
            if reply is grpc.aio.EOF:
                return
            self._heard = True
            self._unreachable_reported = False
            self.features = reply.features
            deliver(from_pb(reply))

    def _stream_task_done(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            log.error(
                "node=%s peer=%s append loop died; restarting on next send",
                self._router.node_id,
                self.id,
                exc_info=task.exception(),
            )
        if self._stream_task is task:
            self._stream_task = None

    # --- shutdown -------------------------------------------------------------------------------

    async def close(self) -> None:
        tasks = [*self._unary_tasks, *([self._stream_task] if self._stream_task else [])]
        if self._snapshot_task is not None:
            tasks.append(self._snapshot_task)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._stream_task = None
        await self._channel.close()


class RaftTransport:
    """Sends the core's messages to peers and hands everything received to `deliver`.

    `addresses` maps node id -> "host:port" (this node's own entry, if present, is ignored).
    Serve `servicer()` on the node's grpc.aio server so peers' calls reach this node.
    """

    def __init__(
        self,
        node_id: str,
        addresses: Mapping[str, str],
        deliver: Callable[[Message], None],
        *,
        rpc_timeout: float = 1.0,
        max_message_bytes: int = MAX_MESSAGE_BYTES,
        max_append_bytes: int = DEFAULT_APPEND_BYTES,
        channel_options: ChannelOptions | None = None,
        credentials: grpc.ChannelCredentials | None = None,
    ) -> None:
        if rpc_timeout <= 0:
            raise ValueError(f"rpc_timeout must be positive, got {rpc_timeout}")
        self.node_id = node_id
        self.router = ReplyRouter(node_id, deliver, rpc_timeout=rpc_timeout)
        self._rpc_timeout = rpc_timeout
        self._max_append_bytes = max_append_bytes  # queued appends merge up to this (the core's limit)
        self._options = (
            channel_options if channel_options is not None else default_channel_options(max_message_bytes)
        )
        self._credentials = credentials
        self._addresses: dict[str, str] = {}
        self._peers: dict[str, _Peer] = {}  # Invariant: keys ⊆ self._addresses, created on first send
        self._closing: set[asyncio.Task[None]] = set()  # closes of peers removed by update_peers
        self._warned_unknown: set[str] = set()
        self._closed = False
        # Set by the node: makes (request with fresh metadata, state-machine data, addresses).
        # Set by the node: make (or reuse) the snapshot file a follower needs.
        self.snapshot_source: Callable[[SnapshotRequest], Awaitable[SnapshotFile]] | None = None
        self._dispatch: dict[type, Callable[[Any], None]] = {
            AppendRequest: self._send_append,
            Heartbeat: self._send_append,
            VoteRequest: self._send_vote,
            TimeoutNow: self._send_timeout_now,
            VoteResponse: self.router.route_vote,
            AppendResponse: self.router.route_append,
            HeartbeatResponse: self.router.route_append,
            SnapshotRequest: self._send_snapshot,
            SnapshotResponse: self.router.route_snapshot,
            Unreachable: self._refuse_local_report,
            SnapshotStatus: self._refuse_local_report,
        }
        self._set_addresses(addresses)

    def peer_features(self, peer_id: str) -> int | None:
        """The raftsched.features bits `peer_id` sent with its last reply to our appends on the
        current stream; None before one arrived (a follower never sends appends: None there)."""
        peer = self._peers.get(peer_id)
        return peer.features if peer is not None else None

    def servicer(self) -> RaftServicer:
        """The inbound half, sharing this transport's reply routes and `deliver`."""
        return RaftServicer(self.router)

    # --- the driver's interface -----------------------------------------------------------------

    def send(self, messages: Iterable[Message]) -> None:
        """Queue `messages` for their peers. Never blocks, never raises (failures are logged and,
        where the core should know, reported later through `deliver` as `Unreachable`)."""
        if self._closed:
            log.debug("node=%s transport closed; dropping messages", self.node_id)
            return
        for msg in messages:
            try:
                self._dispatch[type(msg)](msg)
            except Exception:
                log.exception("node=%s failed to send %s to %s", self.node_id, type(msg).__name__, quote(msg.to))

    def update_peers(self, addresses: Mapping[str, str]) -> None:
        """Follow a membership change: removed peers and peers whose address changed are closed
        (in the background, owned by this transport); new ones connect on their first message."""
        self._set_addresses(addresses)
        for peer_id, peer in list(self._peers.items()):
            if self._addresses.get(peer_id) != peer.address:
                del self._peers[peer_id]
                self._close_in_background(peer)
        self._warned_unknown.clear()

    async def close(self) -> None:
        """Stop every task and channel. Inbound streams are ended and waiting vote calls fail;
        stopping the gRPC server itself is the caller's job."""
        self._closed = True
        self.router.close()
        peers, self._peers = list(self._peers.values()), {}
        await asyncio.gather(*(peer.close() for peer in peers), *self._closing, return_exceptions=True)

    def _send_snapshot(self, msg: SnapshotRequest) -> None:
        """Stream a snapshot in the background; the core learns the outcome as SnapshotStatus
        (and the follower's SnapshotResponse). One transfer per peer at a time."""
        peer = self._peer(msg.to)
        source = self.snapshot_source
        if peer is None or source is None or peer.sending_snapshot:
            if source is None:
                log.warning("node=%s no snapshot source; cannot send a snapshot to %s", self.node_id, quote(msg.to))
            status = SnapshotStatus(frm=msg.to, to=self.node_id, failed=True)
            asyncio.get_running_loop().call_soon(self.router.deliver, status)
            return
        peer.start_snapshot(lambda: source(msg))

    # --- dispatch -------------------------------------------------------------------------------

    def _send_append(self, msg: AppendMessage) -> None:
        peer = self._peer(msg.to)
        if peer is not None:
            peer.enqueue_append(msg)

    def _send_vote(self, msg: VoteRequest) -> None:
        peer = self._peer(msg.to)
        if peer is not None:
            peer.start_unary("RequestVote", lambda: peer.request_vote(msg))

    def _send_timeout_now(self, msg: TimeoutNow) -> None:
        peer = self._peer(msg.to)
        if peer is not None:
            peer.start_unary("TimeoutNow", lambda: peer.timeout_now(msg))

    def _refuse_local_report(self, msg: Message) -> None:
        log.error("node=%s %s is a local report and is never sent; dropped", self.node_id, type(msg).__name__)

    def _peer(self, peer_id: str) -> _Peer | None:
        peer = self._peers.get(peer_id)
        if peer is not None:
            return peer
        address = self._addresses.get(peer_id)
        if address is None:
            self._report_unknown(peer_id)
            return None
        peer = _Peer(
            peer_id, address, self.router, rpc_timeout=self._rpc_timeout, open_channel=self._open_channel,
            merge_bytes=self._max_append_bytes,
        )
        self._peers[peer_id] = peer
        return peer

    def _report_unknown(self, peer_id: str) -> None:
        """A message for a node with no address: tell the core once (until the next update)."""
        if peer_id in self._warned_unknown:
            return
        self._warned_unknown.add(peer_id)
        reason = "is this node" if peer_id == self.node_id else "has no known address"
        log.warning("node=%s cannot send to %s: it %s", self.node_id, quote(peer_id), reason)
        if peer_id != self.node_id:
            report = Unreachable(frm=peer_id, to=self.node_id)
            asyncio.get_running_loop().call_soon(self.router.deliver, report)

    # --- plumbing -------------------------------------------------------------------------------

    def _set_addresses(self, addresses: Mapping[str, str]) -> None:
        self._addresses = {i: a for i, a in addresses.items() if i != self.node_id}

    def _open_channel(self, address: str) -> Any:
        if self._credentials is not None:
            return grpc.aio.secure_channel(address, self._credentials, options=self._options)
        return grpc.aio.insecure_channel(address, options=self._options)

    def _close_in_background(self, peer: _Peer) -> None:
        task = asyncio.get_running_loop().create_task(peer.close(), name=f"raft-close->{peer.id}")
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)


def _merged(batch: list[AppendMessage], max_bytes: int) -> list[AppendMessage]:
    """`batch` in order, each append that continues the one before merged into it."""
    out: list[AppendMessage] = []
    for msg in batch:
        last = out[-1] if out else None
        if isinstance(last, AppendRequest) and isinstance(msg, AppendRequest):
            merged = merge_appends(last, msg, max_bytes)
            if merged is not None:
                out[-1] = merged
                continue
        out.append(msg)
    return out


def _take_all(queue: asyncio.Queue[AppendMessage]) -> list[AppendMessage]:
    """Everything queued right now, in order, without waiting."""
    return [queue.get_nowait() for _ in range(queue.qsize())]


def _clear(queue: asyncio.Queue[AppendMessage]) -> int:
    """Drop what was queued for a stream that failed: the core resends after `Unreachable`."""
    return len(_take_all(queue))


def _is_no_answer(err: grpc.aio.AioRpcError) -> bool:
    """The peer's servicer got the call but its core gave no answer (see `routes.NO_ANSWER_PREFIX`)."""
    return bool(
        err.code() == grpc.StatusCode.UNAVAILABLE and (err.details() or "").startswith(NO_ANSWER_PREFIX)
    )


def _session_outcome(outcomes: Iterable[BaseException | None]) -> str:
    """Why a stream session ended, for the log: the first real error, else a clean end."""
    for outcome in outcomes:
        if isinstance(outcome, grpc.aio.AioRpcError):
            return f"{outcome.code().name}: {outcome.details()}"
        if isinstance(outcome, Exception):
            log.error("append stream failed unexpectedly", exc_info=outcome)
            return repr(outcome)
    return "closed by peer"
