"""gRPC credentials from a TLSConfig: the node's server side (mutual TLS, client certificate
required) and the channel side (the process's own certificate, optionally a bearer token)."""

from __future__ import annotations

import grpc

from raftsched.config import TLSConfig


class TLSError(ValueError):
    """The configured certificate files cannot be used."""


def server_credentials(tls: TLSConfig) -> grpc.ServerCredentials:
    """Serve with `tls.cert`/`tls.key` and refuse any client without a certificate signed by `tls.ca`."""
    if not (tls.cert and tls.key and tls.ca):
        raise TLSError("a TLS node needs a certificate, its key and the CA "
                       "(--tls-dir or --tls-cert/--tls-key/--tls-ca)")
    return grpc.ssl_server_credentials([(_read(tls.key), _read(tls.cert))], root_certificates=_read(tls.ca),
                                       require_client_auth=True)


def channel_credentials(tls: TLSConfig, token: str = "") -> grpc.ChannelCredentials:
    """Trust `tls.ca`; present `tls.cert` when given; send `authorization: Bearer <token>` when given."""
    creds = grpc.ssl_channel_credentials(root_certificates=_read(tls.ca), private_key=_read_opt(tls.key),
                                         certificate_chain=_read_opt(tls.cert))
    if token:
        return grpc.composite_channel_credentials(creds, grpc.access_token_call_credentials(token))
    return creds


def _read(path: str) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as e:
        raise TLSError(f"{path}: {e.strerror or e}") from e


def _read_opt(path: str) -> bytes | None:
    return _read(path) if path else None
