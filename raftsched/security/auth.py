"""Authentication and role checks for every RPC a node serves: a grpc.aio server interceptor.

An identity comes from a bearer token (`authorization: Bearer <token>`, when a tokens file is
configured) or else from the client certificate the TLS handshake verified (its role is the
`urn:raftsched:role:<role>` URI SAN, see `certs.py`). A token wins over the certificate, so a
generic client certificate plus a token acts with the token's role. No identity ->
UNAUTHENTICATED; an identity whose role may not call the method (`roles.RULES`) ->
PERMISSION_DENIED.

A follower forwards a client's write to the leader with its own node certificate (role `peer`);
the forwarded call carries the original caller's role in `raftsched-forwarded`, and the leader
judges the call by that role. Only `peer` is trusted to say so.

The checked identity is kept in `CALLER` (a context variable) for the rest of the call. A node
certificate may name its node id (`urn:raftsched:node:<id>`, see `certs.py`); the Raft service
then refuses messages whose `from` is another node (`certificate_node`). Likewise an executor
certificate may name its executor id (`urn:raftsched:executor:<id>`), and an executor token may
be bound to one (`tokens.py`); `Executor.Connect` then refuses a registration under another id
(`caller_executor`).
"""

from __future__ import annotations

import inspect
import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from typing import Any, TypeAlias

import grpc
from cryptography import x509

from raftsched.security import roles
from raftsched.security.certs import executor_of, node_of, role_of
from raftsched.security.tokens import Identity, TokenError, TokenTable, bearer_token

log = logging.getLogger("raftsched.auth")

FORWARDED_KEY = "raftsched-forwarded"  # same key as raftsched.api.forward
CALLER: ContextVar[Identity | None] = ContextVar("raftsched_caller", default=None)
_CERT_CACHE_SIZE = 256

Context: TypeAlias = grpc.aio.ServicerContext[Any, Any]


class AuthError(Exception):
    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class Authenticator:
    """Decides who calls and whether they may; no gRPC server plumbing (see AuthInterceptor)."""

    def __init__(self, *, certificates: bool, tokens: TokenTable | None) -> None:
        self.certificates = certificates
        self.tokens = tokens
        self._cert_cache: OrderedDict[bytes, Identity] = OrderedDict()  # pem -> identity, bounded

    def identify(self, auth_context: dict[str, list[bytes]], metadata: Any) -> Identity:
        try:
            token = bearer_token(metadata)
        except TokenError as e:
            raise AuthError(grpc.StatusCode.UNAUTHENTICATED, str(e)) from None
        if token is not None:
            if self.tokens is None:
                raise AuthError(grpc.StatusCode.UNAUTHENTICATED, "this node accepts no bearer tokens")
            identity = self.tokens.lookup(token)
            if identity is None:
                raise AuthError(grpc.StatusCode.UNAUTHENTICATED, "unknown bearer token")
            return identity
        pems = auth_context.get("x509_pem_cert") if self.certificates else None
        if pems:
            return self._cert_identity(pems[0])
        raise AuthError(grpc.StatusCode.UNAUTHENTICATED,
                        "no credentials: present a certificate signed by the cluster's CA or a bearer token")

    def authorize(self, identity: Identity, method: str, metadata: Any) -> str:
        """The role the call is judged by; raises AuthError(PERMISSION_DENIED) when it may not."""
        role = identity.role
        forwarded = _value(metadata, FORWARDED_KEY)
        if role == roles.PEER and forwarded is not None and roles.forwardable(method):
            if forwarded not in roles.CLIENT_ROLES:
                raise AuthError(grpc.StatusCode.PERMISSION_DENIED,
                                f"{method} forwarded by {identity.name} without a client role")
            role = forwarded
        if not roles.may_call(role, method):
            what = f"role {role}" if role else "no raftsched role"
            raise AuthError(grpc.StatusCode.PERMISSION_DENIED, f"{identity.name} ({what}) may not call {method}")
        return role or ""

    def _cert_identity(self, pem: bytes) -> Identity:
        identity = self._cert_cache.get(pem)
        if identity is not None:
            self._cert_cache.move_to_end(pem)
            return identity
        try:
            cert = x509.load_pem_x509_certificate(pem)
        except ValueError:
            raise AuthError(grpc.StatusCode.UNAUTHENTICATED, "unreadable client certificate") from None
        cns = cert.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
        cn = cns[0].value if cns else str(cert.serial_number)
        name = f"cert:{cn.decode(errors='replace') if isinstance(cn, bytes) else cn}"
        role = role_of(cert)
        node = node_of(cert) if role == roles.PEER else None
        executor = executor_of(cert) if role == roles.EXECUTOR else None
        identity = Identity(name, role if role in roles.ROLES else None, "cert", node, executor)
        self._cert_cache[pem] = identity
        if len(self._cert_cache) > _CERT_CACHE_SIZE:
            self._cert_cache.popitem(last=False)
        return identity

    def check(self, context: Context, method: str) -> Identity:
        metadata = context.invocation_metadata()
        identity = self.identify(context.auth_context(), metadata)
        self.authorize(identity, method, metadata)
        return identity


class AuthInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    """Runs `Authenticator.check` before every handler, aborting with its status code."""

    def __init__(self, authenticator: Authenticator) -> None:
        self._auth = authenticator

    async def intercept_service(self, continuation: Callable[[Any], Awaitable[Any]],
                                handler_call_details: grpc.HandlerCallDetails) -> Any:
        handler = await continuation(handler_call_details)
        if handler is None:
            return None
        return _guard(handler, self._admit(handler_call_details.method))

    def _admit(self, method: str) -> Callable[[Context], Awaitable[None]]:
        async def admit(context: Context) -> None:
            try:
                identity = self._auth.check(context, method)
            except AuthError as e:
                log.info("refused %s from %s: %s (%s)", method, context.peer(), e.code.name, e.message)
                await context.abort(e.code, e.message)
            CALLER.set(identity)

        return admit


def caller_role() -> str:
    """The role of the identity calling right now ("" outside an authenticated call)."""
    identity = CALLER.get()
    return identity.role or "" if identity is not None else ""


def certificate_node() -> str | None:
    """The node id named by the certificate of the peer calling right now; None in insecure mode,
    for a token, or for a node certificate that names no node (the shared `node.crt` of older
    `certs init`: its holder may speak for any node, so nothing can be checked)."""
    identity = CALLER.get()
    return identity.node if identity is not None else None


def caller_executor() -> str | None:
    """The executor id the credentials of the caller name (an executor certificate naming one, or
    a token bound to one); None in insecure mode, and for the shared `executor.crt` or an unbound
    executor token: their holder may register under any id, so nothing can be checked."""
    identity = CALLER.get()
    return identity.executor if identity is not None else None


def _guard(handler: grpc.RpcMethodHandler, admit: Callable[[Context], Awaitable[None]]) -> grpc.RpcMethodHandler:
    """The same handler with `admit` awaited first, keeping its kind (unary/stream, generator or not)."""
    kinds = (("unary_unary", grpc.unary_unary_rpc_method_handler),
             ("unary_stream", grpc.unary_stream_rpc_method_handler),
             ("stream_unary", grpc.stream_unary_rpc_method_handler),
             ("stream_stream", grpc.stream_stream_rpc_method_handler))
    for attr, make in kinds:
        behavior = getattr(handler, attr)
        if behavior is not None:
            return make(_wrap(behavior, admit), request_deserializer=handler.request_deserializer,
                        response_serializer=handler.response_serializer)
    raise AssertionError(f"a method handler with no behavior: {handler!r}")


def _wrap(behavior: Callable[..., Any], admit: Callable[[Context], Awaitable[None]]) -> Callable[..., Any]:
    if inspect.isasyncgenfunction(behavior):
        async def generator(request: Any, context: Context) -> Any:
            await admit(context)
            async for response in behavior(request, context):
                yield response

        return generator

    async def call(request: Any, context: Context) -> Any:
        await admit(context)
        result = behavior(request, context)
        return await result if inspect.isawaitable(result) else result

    return call


def _value(metadata: Any, key: str) -> str | None:
    for k, v in metadata or ():
        if k == key:
            return v.decode(errors="replace") if isinstance(v, bytes) else str(v)
    return None


def build_interceptors(*, tls_enabled: bool, tokens_file: str, node_id: str) -> list[grpc.aio.ServerInterceptor]:
    """The node's interceptors: none in insecure dev mode (no TLS, no tokens), else the auth check.
    Logs which mode the node runs in (never a token)."""
    tokens = TokenTable.load(tokens_file) if tokens_file else None
    if not tls_enabled and tokens is None:
        log.warning("node %s: authentication is OFF (insecure dev mode: no TLS, no tokens); anyone who "
                    "reaches this port may call every service", node_id)
        return []
    log.info("node %s: authentication on (client certificates: %s; bearer tokens: %s)", node_id,
             "yes" if tls_enabled else "no", f"{len(tokens)} accepted" if tokens else "none")
    return [AuthInterceptor(Authenticator(certificates=tls_enabled, tokens=tokens))]
