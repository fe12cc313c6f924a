"""Maps internal exceptions to gRPC status codes, in one place, with messages a user can act on.

    ValidationError        -> INVALID_ARGUMENT (names the field)
    NotFoundError          -> NOT_FOUND
    NotLeaderError         -> UNAVAILABLE  (no leader known; safe to retry)
    ProposalDroppedError   -> UNAVAILABLE  (transfer or membership change in flight)
    ProposalLostError      -> UNAVAILABLE  (certainly not applied; safe to retry)
    OutcomeUnknownError    -> UNAVAILABLE  (retry with the same idempotency key), with trailing
                              metadata `raftsched-outcome: unknown` so clients tell it apart by type
    OverloadedError        -> RESOURCE_EXHAUSTED (too many proposals pending; back off, then retry)
    ApplyResult.error/code -> that code
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any, NoReturn, TypeVar

import grpc

from raftsched.logs import REQUEST_ID, MadeUpRequestId
from raftsched.raft.errors import NotLeaderError, ProposalDroppedError
from raftsched.raft_driver import LeaderMovedError, OutcomeUnknownError, OverloadedError, ProposalLostError
from raftsched.state.validate import ValidationError

log = logging.getLogger("raftsched.api")
T = TypeVar("T")


class NotFoundError(Exception):
    pass


LEADER_KEY = "raftsched-leader"  # where the leader is, on answers that know (raftsched.client.routing)
OUTCOME_KEY = "raftsched-outcome"  # "unknown": the write may or may not apply (raftsched.client.errors)


class ApiError(Exception):
    def __init__(self, code: grpc.StatusCode, message: str, *, outcome_unknown: bool = False) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.outcome_unknown = outcome_unknown  # e.g. the leader said so to a forwarding follower


def outcome_unknown(err: BaseException) -> bool:
    return isinstance(err, OutcomeUnknownError) or (isinstance(err, ApiError) and err.outcome_unknown)


def status_of(err: BaseException) -> tuple[grpc.StatusCode, str]:
    if isinstance(err, ApiError):
        return err.code, err.message
    if isinstance(err, ValidationError):
        return grpc.StatusCode.INVALID_ARGUMENT, str(err)
    if isinstance(err, NotFoundError):
        return grpc.StatusCode.NOT_FOUND, str(err)
    if isinstance(err, NotLeaderError):
        return grpc.StatusCode.UNAVAILABLE, f"no leader reachable ({err}); retry"
    if isinstance(err, LeaderMovedError):
        return grpc.StatusCode.UNAVAILABLE, f"{err} (not applied)"
    if isinstance(err, ProposalDroppedError):
        return grpc.StatusCode.UNAVAILABLE, f"the leader refused the write for now: {err}; retry"
    if isinstance(err, ProposalLostError):
        return grpc.StatusCode.UNAVAILABLE, f"{err}; the write did not apply, retry"
    if isinstance(err, OutcomeUnknownError):
        return grpc.StatusCode.UNAVAILABLE, f"{err}; outcome unknown, retry with the same idempotency key"
    if isinstance(err, OverloadedError):
        return grpc.StatusCode.RESOURCE_EXHAUSTED, f"overloaded: {err}"
    if isinstance(err, TimeoutError):
        return grpc.StatusCode.DEADLINE_EXCEEDED, "timed out"
    log.exception("internal error", exc_info=err)
    return grpc.StatusCode.INTERNAL, f"internal error: {type(err).__name__}: {err}"


def code_from_int(code: int) -> grpc.StatusCode:
    for status in grpc.StatusCode:
        if status.value[0] == code:
            return status
    return grpc.StatusCode.UNKNOWN


async def abort(context: grpc.aio.ServicerContext[Any, Any], err: BaseException) -> NoReturn:
    code, message = status_of(err)
    if outcome_unknown(err):
        context.set_trailing_metadata(((OUTCOME_KEY, "unknown"),))
    elif isinstance(err, LeaderMovedError) and err.leader:
        context.set_trailing_metadata(((LEADER_KEY, err.leader),))  # the client goes there at once
    await context.abort(code, message)
    raise AssertionError("unreachable")  # context.abort raises


REQUEST_ID_KEY = "x-request-id"
MAX_REQUEST_ID = 64


def request_id(context: grpc.aio.ServicerContext[Any, Any]) -> str | MadeUpRequestId:
    for key, value in context.invocation_metadata() or ():
        if key == REQUEST_ID_KEY:
            text = value.decode(errors="replace") if isinstance(value, bytes) else value
            return text[:MAX_REQUEST_ID]
    return MadeUpRequestId()


def guarded(fn: Callable[..., Awaitable[T]]) -> Callable[..., Awaitable[T]]:
    """Decorate a unary servicer method: any exception becomes the right status code. The call's
    request id (the caller's `x-request-id` metadata, else a new one) tags its log lines."""

    async def wrapper(self: Any, request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> T:
        REQUEST_ID.set(request_id(context))
        try:
            return await fn(self, request, context)
        except grpc.aio.AbortError:
            raise
        except Exception as err:  # the boundary: map to a status, never leak a traceback
            await abort(context, err)

    wrapper.__name__ = fn.__name__
    wrapper.__doc__ = fn.__doc__
    return wrapper
