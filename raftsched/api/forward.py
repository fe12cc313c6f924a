"""Followers forward client calls to the leader over one cached channel per address."""

from __future__ import annotations

import grpc

from raftsched.api.errors import LEADER_KEY, OUTCOME_KEY, ApiError
from raftsched.seams import ChannelSource
from raftsched.security.auth import caller_role

FORWARDED_KEY = "raftsched-forwarded"


class Forwarder:
    def __init__(self, options: list[tuple[str, int]], credentials: grpc.ChannelCredentials | None = None) -> None:
        self._channels: dict[str, grpc.aio.Channel] = {}
        self._options = options
        self._credentials = credentials

    def channel(self, address: str) -> grpc.aio.Channel:
        channel = self._channels.get(address)
        if channel is None:
            if self._credentials is not None:
                channel = grpc.aio.secure_channel(address, self._credentials, options=self._options)
            else:
                channel = grpc.aio.insecure_channel(address, options=self._options)
            self._channels[address] = channel
        return channel

    async def close(self) -> None:
        for channel in self._channels.values():
            await channel.close()
        self._channels.clear()


def forwarded_metadata() -> tuple[tuple[str, str], ...]:
    """Marks a call as forwarded by a follower; the value is the original caller's role, by which
    the leader judges the call when auth is on (raftsched.security.auth), else "1"."""
    return ((FORWARDED_KEY, caller_role() or "1"),)


def was_forwarded(context: grpc.aio.ServicerContext) -> bool:
    return any(k == FORWARDED_KEY for k, _ in (context.invocation_metadata() or ()))


def no_leader(leader_address: str) -> ApiError:
    where = f"; the leader is at {leader_address}" if leader_address else ""
    return ApiError(grpc.StatusCode.UNAVAILABLE, f"this node cannot reach the leader{where}; retry")


async def call_leader(forwarder: ChannelSource, leader_address: str, stub_cls: type, method: str,
                      request: object, timeout: float, context: grpc.aio.ServicerContext | None = None) -> object:
    """Send `request` to the leader's `method`; map its failure to the same status here. The
    answer to `context` names the leader (trailing metadata `raftsched-leader`), so a client that
    reached a follower sends its next calls straight to the leader."""
    if not leader_address:
        raise ApiError(grpc.StatusCode.UNAVAILABLE, "no leader elected right now; retry")
    stub = stub_cls(forwarder.channel(leader_address))
    try:
        answer = await getattr(stub, method)(request, timeout=timeout, metadata=forwarded_metadata())
    except grpc.aio.AioRpcError as err:
        unknown = any(k == OUTCOME_KEY for k, _ in err.trailing_metadata() or ())
        raise ApiError(err.code(), err.details() or str(err.code()), outcome_unknown=unknown) from None
    if context is not None:
        context.set_trailing_metadata(((LEADER_KEY, leader_address),))
    return answer
