"""Channel options and credentials, the same for the sync and asyncio clients."""

from __future__ import annotations

import grpc

from raftsched.client.errors import ClientError
from raftsched.config import TLSConfig

MAX_MESSAGE_BYTES = 64 << 20

CHANNEL_OPTIONS: list[tuple[str, int]] = [
    ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
    ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
    # Why: gRPC's default reconnect backoff grows to two minutes, so a long-lived client would not
    # notice a restarted node for that long. The client's own policy already paces retries.
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.min_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 1000),
    # Why: retries are decided by raftsched.client.routing, knowing which calls are idempotent.
    ("grpc.enable_retries", 0),
]


def credentials(tls: TLSConfig, token: str = "") -> grpc.ChannelCredentials:
    """Channel credentials from PEM files (mutual TLS when a certificate is given), sending
    `authorization: Bearer <token>` on every call when a token is given."""
    creds = grpc.ssl_channel_credentials(
        root_certificates=_read(tls.ca), private_key=_read(tls.key), certificate_chain=_read(tls.cert))
    if token:
        return grpc.composite_channel_credentials(creds, grpc.access_token_call_credentials(token))
    return creds


def check_token_needs_tls(tls: TLSConfig | None, token: str) -> None:
    """A bearer token is a password: it is only ever sent over TLS."""
    if token and tls is None:
        raise ClientError("INVALID_ARGUMENT", "a bearer token needs TLS (--tls-dir or --tls-ca): "
                          "it must not cross the network in clear")


def _read(path: str) -> bytes | None:
    if not path:
        return None
    with open(path, "rb") as f:
        return f.read()
