"""The inbound side of the Raft service: calls from peers become messages for the core.

Each handler converts, checks the message is addressed to this node, and hands it to the core
through the router's `deliver`. Answers come back later through `RaftTransport.send`, which the
router matches to the call waiting for them (see `routes.py`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any, NoReturn, TypeVar

import grpc

from raftsched.raft.messages import Message
from raftsched.transport import convert
from raftsched.transport.routes import (
    END,
    NO_ANSWER_PREFIX,
    ReplyRoute,
    ReplyRouter,
    RouterClosed,
    VoteSuperseded,
)
from raftsched.transport.snapshots import SnapshotTransferError, receive_snapshot
from raftsched.v1 import raft_pb2 as pb
from raftsched.v1 import raft_pb2_grpc

log = logging.getLogger(__name__)

P = TypeVar("P")
M = TypeVar("M", bound=Message)



class RaftServicer(raft_pb2_grpc.RaftServicer):
    """Serves `raftsched.v1.Raft` for one node; shares its `ReplyRouter` with `RaftTransport`."""

    def __init__(self, router: ReplyRouter) -> None:
        self._router = router

    def add_to_server(self, server: grpc.aio.Server) -> None:
        raft_pb2_grpc.add_RaftServicer_to_server(self, server)  # type: ignore[no-untyped-call]

    async def RequestVote(
        self, request: pb.VoteRequest, context: grpc.aio.ServicerContext
    ) -> pb.VoteResponse:
        msg = await self._accept(convert.vote_request_from_pb, request, context)
        router = self._router
        fut = router.expect_vote(msg.frm, msg.pre_vote)
        router.deliver(msg)
        try:
            async with asyncio.timeout(self._vote_wait(context)):
                reply = await fut
        except TimeoutError:
            await _abort(context, grpc.StatusCode.UNAVAILABLE, f"{NO_ANSWER_PREFIX}none within the deadline")
        except VoteSuperseded as err:
            await _abort(context, grpc.StatusCode.UNAVAILABLE, f"{NO_ANSWER_PREFIX}{err}")
        except RouterClosed as err:
            await _abort(context, grpc.StatusCode.UNAVAILABLE, str(err))
        finally:
            router.forget_vote(msg.frm, msg.pre_vote, fut)
        return convert.vote_response_to_pb(reply)

    async def AppendEntries(
        self, request_iterator: AsyncIterator[pb.AppendEntriesRequest], context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.AppendEntriesResponse]:
        first = await anext(request_iterator, None)
        if first is None:
            return
        msg = await self._accept(convert.append_request_from_pb, first, context)
        # This stream becomes THE way back to this leader; a reconnect replaces (and ends) the old one.
        route = self._router.open_route(msg.frm)
        self._router.deliver(msg)
        reader = asyncio.create_task(self._read_appends(request_iterator, route), name=f"raft-in-{msg.frm}")
        try:
            async for reply in _drain(route):
                yield reply
        finally:
            self._router.close_route(route)
            reader.cancel()
            await asyncio.gather(reader, return_exceptions=True)
        if route.error is not None:
            await _abort(context, grpc.StatusCode.INVALID_ARGUMENT, route.error)

    async def InstallSnapshot(
        self, request_iterator: AsyncIterator[pb.InstallSnapshotChunk], context: grpc.aio.ServicerContext
    ) -> pb.InstallSnapshotResponse:
        """Receive the whole snapshot, verified, then let the core decide; answer with its reply."""
        router = self._router
        if router.snapshot_sink is None or router.snapshot_dir is None:
            await _abort(context, grpc.StatusCode.UNIMPLEMENTED, "this node cannot install snapshots")
        try:
            received = await receive_snapshot(request_iterator, router.snapshot_dir)
        except SnapshotTransferError as err:
            await _abort(context, grpc.StatusCode.DATA_LOSS, f"snapshot refused: {err}")
        if received.request.to != router.node_id:
            received.path.unlink(missing_ok=True)
            await _abort(context, grpc.StatusCode.FAILED_PRECONDITION, f"snapshot for {received.request.to}")
        fut = router.expect_snapshot(received.request.frm)
        try:
            await router.snapshot_sink(received)
        except SnapshotTransferError as err:
            fut.cancel()
            await _abort(context, grpc.StatusCode.DATA_LOSS, f"snapshot refused: {err}")
        try:
            async with asyncio.timeout(30.0):
                reply = await fut
        except (TimeoutError, asyncio.CancelledError):
            await _abort(context, grpc.StatusCode.UNAVAILABLE, f"{NO_ANSWER_PREFIX}snapshot not installed in time")
        return pb.InstallSnapshotResponse(
            **{"from": router.node_id}, term=reply.term, success=reply.success, match_index=reply.match_index
        )

    async def TimeoutNow(
        self, request: pb.TimeoutNowRequest, context: grpc.aio.ServicerContext
    ) -> pb.TimeoutNowResponse:
        self._router.deliver(await self._accept(convert.timeout_now_from_pb, request, context))
        return pb.TimeoutNowResponse()

    # --- helpers -------------------------------------------------------------------------------

    async def _accept(self, from_pb: Callable[[P], M], request: P, context: grpc.aio.ServicerContext) -> M:
        """Convert and check a request, or abort the call with a status the sender can act on."""
        if self._router.closed:
            await _abort(context, grpc.StatusCode.UNAVAILABLE, "the Raft transport is closing")
        try:
            msg = from_pb(request)
        except convert.ConversionError as err:
            await _abort(context, grpc.StatusCode.INVALID_ARGUMENT, str(err))
        if msg.to != self._router.node_id:
            # A wrong address book would otherwise let node A's votes count as node B's.
            await _abort(
                context,
                grpc.StatusCode.FAILED_PRECONDITION,
                f"message for {msg.to!r} reached node {self._router.node_id!r}: check the peer addresses",
            )
        return msg

    async def _read_appends(
        self, requests: AsyncIterator[pb.AppendEntriesRequest], route: ReplyRoute
    ) -> None:
        """Deliver every further request on the stream; end the reply side when the input ends."""
        try:
            async for request in requests:
                self._router.deliver(convert.append_request_from_pb(request))
        except convert.ConversionError as err:
            log.error("node=%s bad append from %s: %s", self._router.node_id, route.leader, err)
            route.error = str(err)
        except grpc.aio.AioRpcError as err:
            log.info(
                "node=%s append stream from %s ended: %s", self._router.node_id, route.leader, err.code()
            )
        finally:
            route.end()

    def _vote_wait(self, context: grpc.aio.ServicerContext) -> float:
        """Wait for the core at most rpc_timeout, and not past the caller's own deadline."""
        remaining: float | None = context.time_remaining()
        if remaining is None:
            return self._router.rpc_timeout
        return max(0.0, min(self._router.rpc_timeout, remaining * 0.9))


async def _drain(route: ReplyRoute) -> AsyncIterator[pb.AppendEntriesResponse]:
    """The route's replies in order, until its end marker."""
    while True:
        reply = await route.queue.get()
        if reply is END:
            return
        assert isinstance(reply, pb.AppendEntriesResponse)
        yield reply


async def _abort(context: Any, code: grpc.StatusCode, details: str) -> NoReturn:
    await context.abort(code, details)
    raise AssertionError("context.abort returned")  # it always raises; this tells the type checker
