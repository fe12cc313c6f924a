"""The inbound side of the Raft service: calls from peers become messages for the core.

Each handler converts, checks what the boundary can check (`ReplyRouter.inbound_problem`: the
recipient, the sender against the caller's certificate, ranges and log shapes), and hands the
message to the core through the router's `deliver`; the core checks the rest against its state.
A refused request ends its call with a status naming the reason (INVALID_ARGUMENT, or
FAILED_PRECONDITION for a wrong recipient, PERMISSION_DENIED for a sender the certificate does not
name); a refused message on an append stream ends the stream the same way. Refusals are counted
and logged by the router. Answers come back later through `RaftTransport.send`, which the router
matches to the call waiting for them (see `routes.py`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any, NoReturn, TypeVar

import grpc
from google.protobuf.message import DecodeError

from raftsched.quoting import quote
from raftsched.raft.messages import Message, SnapshotRequest
from raftsched.raft.refusals import Reason, Refusal
from raftsched.raft.validate import Problem
from raftsched.security.auth import certificate_node
from raftsched.transport import convert
from raftsched.transport.routes import (
    END,
    NO_ANSWER_PREFIX,
    ReplyRoute,
    ReplyRouter,
    RouterClosed,
    VoteSuperseded,
)
from raftsched.transport.snapshots import (
    MalformedSnapshotError,
    SnapshotRefusedError,
    SnapshotTransferError,
    receive_snapshot,
)
from raftsched.v1 import raft_pb2 as pb
from raftsched.v1 import raft_pb2_grpc

log = logging.getLogger(__name__)

P = TypeVar("P")
M = TypeVar("M", bound=Message)

_SERVICE = "raftsched.v1.Raft"

# The status a refused request ends with, by reason (INVALID_ARGUMENT for the rest).
_STATUS = {
    Reason.WRONG_RECIPIENT: grpc.StatusCode.FAILED_PRECONDITION,
    Reason.FROM_NOT_CERTIFICATE: grpc.StatusCode.PERMISSION_DENIED,
}

class RaftServicer(raft_pb2_grpc.RaftServicer):
    """Serves `raftsched.v1.Raft` for one node; shares its `ReplyRouter` with `RaftTransport`."""

    def __init__(self, router: ReplyRouter, certified: Callable[[], str | None] = certificate_node) -> None:
        self._router = router
        self._certified = certified  # the node id the caller's TLS certificate names, if any

    def add_to_server(self, server: grpc.aio.Server) -> None:
        """As the generated `add_RaftServicer_to_server`, except that RequestVote, AppendEntries and
        TimeoutNow parse requests without raising: bytes that are no protobuf message reach the
        handler as `Unparsable` and are refused like any other bad message (grpc would log a
        traceback per frame and answer UNKNOWN). InstallSnapshot keeps its own parsing."""
        handlers = {
            "RequestVote": grpc.unary_unary_rpc_method_handler(
                self.RequestVote,
                request_deserializer=_lenient(pb.VoteRequest.FromString),
                response_serializer=pb.VoteResponse.SerializeToString,
            ),
            "AppendEntries": grpc.stream_stream_rpc_method_handler(
                self.AppendEntries,
                request_deserializer=_lenient(pb.AppendEntriesRequest.FromString),
                response_serializer=pb.AppendEntriesResponse.SerializeToString,
            ),
            "InstallSnapshot": grpc.stream_unary_rpc_method_handler(
                self.InstallSnapshot,
                request_deserializer=pb.InstallSnapshotChunk.FromString,
                response_serializer=pb.InstallSnapshotResponse.SerializeToString,
            ),
            "TimeoutNow": grpc.unary_unary_rpc_method_handler(
                self.TimeoutNow,
                request_deserializer=_lenient(pb.TimeoutNowRequest.FromString),
                response_serializer=pb.TimeoutNowResponse.SerializeToString,
            ),
        }
        server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(_SERVICE, handlers),))
        server.add_registered_method_handlers(_SERVICE, handlers)

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
        certified = self._certified()  # read here: the reader task below copies this call's context
        reader = asyncio.create_task(
            self._read_appends(request_iterator, route, certified), name=f"raft-in-{msg.frm}"
        )
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
        """Receive the whole snapshot, verified, then let the core decide; answer with its reply.
        The request in the first chunk is judged before anything is written (`admit`)."""
        router = self._router
        if router.snapshot_sink is None or router.snapshot_dir is None:
            await _abort(context, grpc.StatusCode.UNIMPLEMENTED, "this node cannot install snapshots")
        certified = self._certified()

        def admit(request: SnapshotRequest) -> Problem | None:
            """Checked on the first chunk, before anything is written: the boundary's checks, then
            the core's (a sender in no configuration we know is refused here, not after 64 GiB)."""
            problem = router.inbound_problem(request, certified)
            return problem if problem is not None or router.admission is None else router.admission(request)

        try:
            received = await receive_snapshot(request_iterator, router.snapshot_dir, admit)
        except SnapshotRefusedError as err:
            router.refuse(err.request, err.problem)
            code = _STATUS.get(err.problem[0], grpc.StatusCode.INVALID_ARGUMENT)
            await _abort(context, code, _details(err.problem))
        except MalformedSnapshotError as err:
            router.note_refusal(_unparsable("InstallSnapshotChunk", "", err))
            await _abort(context, grpc.StatusCode.INVALID_ARGUMENT, f"refused: {Reason.UNPARSABLE}: {err}")
        except SnapshotTransferError as err:
            await _abort(context, grpc.StatusCode.DATA_LOSS, f"snapshot refused: {err}")
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
            msg = from_pb(_parsed(request))
        except convert.ConversionError as err:
            kind = "an undecodable frame" if isinstance(request, Unparsable) else type(request).__name__
            self._router.note_refusal(_unparsable(kind, str(getattr(request, "from", "")), err))
            await _abort(context, grpc.StatusCode.INVALID_ARGUMENT, f"refused: {Reason.UNPARSABLE}: {err}")
        # A wrong address book would otherwise let node A's votes count as node B's.
        problem = self._router.inbound_problem(msg, self._certified())
        if problem is not None:
            self._router.refuse(msg, problem)
            await _abort(context, _STATUS.get(problem[0], grpc.StatusCode.INVALID_ARGUMENT), _details(problem))
        return msg

    async def _read_appends(
        self, requests: AsyncIterator[pb.AppendEntriesRequest], route: ReplyRoute, certified: str | None
    ) -> None:
        """Deliver every further request on the stream; end the reply side when the input ends.
        A refused request ends the stream: its sender is broken or hostile."""
        router = self._router
        try:
            async for request in requests:
                msg = convert.append_request_from_pb(_parsed(request))
                problem = router.inbound_problem(msg, certified) or _same_sender(msg, route)
                if problem is not None:
                    router.refuse(msg, problem)
                    route.error = _details(problem)
                    return
                router.deliver(msg)
        except convert.ConversionError as err:
            router.note_refusal(_unparsable("AppendEntriesRequest", route.leader, err))
            route.error = f"refused: {Reason.UNPARSABLE}: {err}"
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


class Unparsable:
    """What a lenient deserializer gives for bytes that are no protobuf message of its type."""

    def __init__(self, error: Exception) -> None:
        self.error = error


def _lenient(parse: Callable[[bytes], P]) -> Callable[[bytes], P | Unparsable]:
    def deserialize(data: bytes) -> P | Unparsable:
        try:
            return parse(data)
        except DecodeError as err:
            return Unparsable(err)

    return deserialize


def _parsed(request: P | Unparsable) -> P:
    if isinstance(request, Unparsable):
        raise convert.ConversionError(f"not a protobuf message of this call's type ({request.error})")
    return request


def _same_sender(msg: Message, route: ReplyRoute) -> Problem | None:
    """Replies go back by the stream's first sender: every message on it must name that sender."""
    if msg.frm == route.leader:
        return None
    return Reason.SENDER_CHANGED, f"on the append stream of {quote(route.leader)}"


def _unparsable(kind: str, frm: str, err: Exception) -> Refusal:
    return Refusal(Reason.UNPARSABLE, kind, frm, 0, str(err))


def _details(problem: Problem) -> str:
    return f"refused: {problem[0]}: {problem[1]}"


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
