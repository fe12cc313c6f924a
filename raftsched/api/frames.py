"""Request bodies that are no protobuf message of their call's type, on every service of the port.

grpc parses a request body with the handler's `request_deserializer` before (unary requests) or
while (stream requests) the servicer runs; a `DecodeError` there used to end the call with UNKNOWN
"Unexpected DecodeError" and an ERROR line with a traceback in the node log, for every frame.
Servicers are added to the node's server through `CheckedServer`, which registers every handler
with a deserializer that does not raise `DecodeError` (not a server interceptor, which would run
its Python code on every call of every method, well-formed or not):

    unary request   the body parses to an `Unparsable` marker; the handler is not called and the
                    call ends INVALID_ARGUMENT naming the message type
    stream request  the frame raises `MalformedFrame` where the servicer reads it (an iteration or
                    `context.read()`); the call ends INVALID_ARGUMENT naming the message type

Each refusal is counted by (method, reason) in `RequestRefusals` (the metric
`raftsched_requests_refused_total`) and logged on one line, at most once per method and reason per
`LOG_INTERVAL_S`, with the number refused since the last line. The Raft service parses its own
frames leniently and counts them with the other refused Raft messages; its handlers pass through
untouched here since their deserializer never raises.
"""

from __future__ import annotations

import inspect
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any, NoReturn, TypeAlias

import grpc
from google.protobuf.message import DecodeError

log = logging.getLogger("raftsched.api")

Context: TypeAlias = "grpc.aio.ServicerContext[Any, Any]"
LOG_INTERVAL_S = 10.0
UNPARSABLE = "unparsable"  # the `reason` label of a body that is no message of the call's type


class MalformedFrame(Exception):
    """A frame of a request stream is no protobuf message of `type_name`."""

    def __init__(self, type_name: str, error: Exception) -> None:
        super().__init__(f"the request body is not a valid {type_name} message ({error})")
        self.type_name = type_name


class Unparsable:
    """What a unary request's body parses to when it is no message of its type."""

    def __init__(self, type_name: str, error: Exception) -> None:
        self.type_name = type_name
        self.error = error

    def details(self) -> str:
        return f"the request body is not a valid {self.type_name} message ({self.error})"


@dataclass
class RequestRefusals:
    """Refused requests by (method, reason), and the rate limit of their log lines."""

    node_id: str
    interval: float = LOG_INTERVAL_S
    counts: dict[tuple[str, str], int] = field(default_factory=dict)
    _last: dict[tuple[str, str], float] = field(default_factory=dict)
    _suppressed: dict[tuple[str, str], int] = field(default_factory=dict)

    def add(self, method: str, reason: str, detail: str, peer: str = "") -> None:
        key = (method, reason)
        self.counts[key] = self.counts.get(key, 0) + 1
        now = time.monotonic()
        last = self._last.get(key)
        if last is not None and now - last < self.interval:
            self._suppressed[key] = self._suppressed.get(key, 0) + 1
            return
        self._last[key] = now
        more = self._suppressed.pop(key, 0)
        tail = f" ({more} more refused for this reason since the last line)" if more else ""
        log.warning("node=%s refused %s from %s: %s: %s%s", self.node_id, method, peer or "?", reason, detail, tail)


class CheckedServer:
    """Stands in for the node's `grpc.aio.Server` in the generated `add_*Servicer_to_server`
    functions (and `RaftServicer.add_to_server`): registers the same handlers, checked.

    Those functions call `add_generic_rpc_handlers` and then `add_registered_method_handlers` with
    the same handlers; the second call registers both ways, and `finish` makes sure no service was
    left with only the first."""

    def __init__(self, server: grpc.aio.Server, refusals: RequestRefusals) -> None:
        self._server = server
        self._checker = FrameChecker(refusals)
        self._pending: set[str] = set()

    def add_generic_rpc_handlers(self, handlers: Any) -> None:
        self._pending.update(h.service_name() for h in handlers)

    def add_registered_method_handlers(self, service: str, handlers: dict[str, grpc.RpcMethodHandler]) -> None:
        checked = {name: self._checker.checked(h, f"/{service}/{name}") for name, h in handlers.items()}
        self._server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(service, checked),))
        self._server.add_registered_method_handlers(service, checked)
        self._pending.discard(service)

    def finish(self) -> None:
        if self._pending:
            raise AssertionError(f"services registered without their method handlers: {sorted(self._pending)}")


class FrameChecker:
    """Wraps a method handler so that a body that does not parse is refused (see above)."""

    def __init__(self, refusals: RequestRefusals) -> None:
        self._refusals = refusals

    def checked(self, handler: grpc.RpcMethodHandler, method: str) -> grpc.RpcMethodHandler:
        parse = handler.request_deserializer
        if parse is None:
            return handler
        type_name = _type_name(parse, method)
        if handler.unary_unary is not None or handler.unary_stream is not None:
            lenient = _lenient(parse, type_name)
            if handler.unary_unary is not None:
                return grpc.unary_unary_rpc_method_handler(
                    self._unary(handler.unary_unary, method), request_deserializer=lenient,
                    response_serializer=handler.response_serializer)
            return grpc.unary_stream_rpc_method_handler(
                self._unary(handler.unary_stream, method), request_deserializer=lenient,
                response_serializer=handler.response_serializer)
        strict = _strict(parse, type_name)
        if handler.stream_unary is not None:
            return grpc.stream_unary_rpc_method_handler(
                self._stream(handler.stream_unary, method), request_deserializer=strict,
                response_serializer=handler.response_serializer)
        return grpc.stream_stream_rpc_method_handler(
            self._stream(handler.stream_stream, method), request_deserializer=strict,
            response_serializer=handler.response_serializer)

    async def _refuse(self, context: Context, method: str, details: str) -> NoReturn:
        self._refusals.add(method, UNPARSABLE, details, context.peer())
        await context.abort(grpc.StatusCode.INVALID_ARGUMENT, details)
        raise AssertionError("context.abort returned")

    def _unary(self, behavior: Callable[..., Any], method: str) -> Callable[..., Any]:
        if inspect.isasyncgenfunction(behavior):
            async def generator(request: Any, context: Context) -> AsyncIterator[Any]:
                if isinstance(request, Unparsable):
                    await self._refuse(context, method, request.details())
                async for response in behavior(request, context):
                    yield response

            return generator

        # Decided once here: inspect.isawaitable on every call's result showed in the leader's
        # profile (about 2 % of its main thread at 128 unary calls in flight).
        coroutine = inspect.iscoroutinefunction(behavior)

        async def call(request: Any, context: Context) -> Any:
            if isinstance(request, Unparsable):
                await self._refuse(context, method, request.details())
            result = behavior(request, context)
            return await result if coroutine or inspect.isawaitable(result) else result

        return call

    def _stream(self, behavior: Callable[..., Any], method: str) -> Callable[..., Any]:
        if inspect.isasyncgenfunction(behavior):
            async def generator(requests: Any, context: Context) -> AsyncIterator[Any]:
                try:
                    async for response in behavior(requests, context):
                        yield response
                except MalformedFrame as err:
                    await self._refuse(context, method, str(err))

            return generator

        async def call(requests: Any, context: Context) -> Any:
            try:
                result = behavior(requests, context)
                return await result if inspect.isawaitable(result) else result
            except MalformedFrame as err:
                await self._refuse(context, method, str(err))

        return call


def _type_name(parse: Callable[[bytes], Any], method: str) -> str:
    """The protobuf message type `parse` makes (`raftsched.v1.SubmitJobRequest`), else the method's."""
    owner = getattr(parse, "__self__", None)
    descriptor = getattr(owner, "DESCRIPTOR", None)
    name = getattr(descriptor, "full_name", None)
    return name if isinstance(name, str) else f"request of {method}"


def _lenient(parse: Callable[[bytes], Any], type_name: str) -> Callable[[bytes], Any]:
    def deserialize(data: bytes) -> Any:
        try:
            return parse(data)
        except DecodeError as err:
            return Unparsable(type_name, err)

    return deserialize


def _strict(parse: Callable[[bytes], Any], type_name: str) -> Callable[[bytes], Any]:
    def deserialize(data: bytes) -> Any:
        try:
            return parse(data)
        except DecodeError as err:
            raise MalformedFrame(type_name, err) from None

    return deserialize
