"""gRPC channel and server options shared by every Raft peer connection."""

from __future__ import annotations

from typing import Final

ChannelOptions = tuple[tuple[str, int | str], ...]

MAX_MESSAGE_BYTES: Final = 64 * 1024 * 1024  # a batch of entries, well above any sane batch

# Keepalive detects a silently dead peer (cable pulled, VM paused) on an otherwise idle stream
# within about keepalive_time + keepalive_timeout, instead of waiting for TCP's own timeouts.
KEEPALIVE_TIME_MS: Final = 10_000
KEEPALIVE_TIMEOUT_MS: Final = 5_000

# Concurrent calls (HTTP/2 streams) one connection may have open on a node; further calls wait on
# the client side for a free stream. Peers use a handful, an executor one, a client its callers.
MAX_CONCURRENT_STREAMS: Final = 1_000


def channel_options(max_message_bytes: int = MAX_MESSAGE_BYTES) -> ChannelOptions:
    return (
        ("grpc.max_send_message_length", max_message_bytes),
        ("grpc.max_receive_message_length", max_message_bytes),
        ("grpc.keepalive_time_ms", KEEPALIVE_TIME_MS),
        ("grpc.keepalive_timeout_ms", KEEPALIVE_TIMEOUT_MS),
        ("grpc.keepalive_permit_without_calls", 1),
        ("grpc.http2.max_pings_without_data", 0),
        # Reconnect on the same schedule as the append stream's own backoff (50 ms .. 1 s), so a
        # restarted peer is found again within about a second rather than gRPC's default 120 s cap.
        ("grpc.initial_reconnect_backoff_ms", 50),
        ("grpc.min_reconnect_backoff_ms", 50),
        ("grpc.max_reconnect_backoff_ms", 1_000),
    )


def server_options(max_message_bytes: int = MAX_MESSAGE_BYTES) -> ChannelOptions:
    """Options for the node's grpc.aio server so it accepts what `channel_options` sends.

    Without the ping policy the server answers our keepalive pings with GOAWAY
    ("too_many_pings") and the long-lived append streams are torn down every few minutes.
    """
    return (
        ("grpc.max_send_message_length", max_message_bytes),
        ("grpc.max_receive_message_length", max_message_bytes),
        ("grpc.keepalive_permit_without_calls", 1),
        ("grpc.http2.min_ping_interval_without_data_ms", KEEPALIVE_TIME_MS // 2),
        ("grpc.http2.max_ping_strikes", 0),
        ("grpc.max_concurrent_streams", MAX_CONCURRENT_STREAMS),
    )
